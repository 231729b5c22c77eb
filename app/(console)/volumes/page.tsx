"use client";
import { VolumesTable } from "../../components/inventory-tables.tsx";

export default function VolumesPage() {
  return (
    <>
      <h1>Volumes</h1>
      <VolumesTable />
    </>
  );
}
