"use client";
import { ImagesTable } from "../../components/images-table.tsx";

export default function ImagesPage() {
  return (
    <>
      <h1>Images</h1>
      <ImagesTable />
    </>
  );
}
