"use client";
import { ContainersTable } from "../../components/containers-table.tsx";

export default function ContainersPage() {
  return (
    <>
      <h1>Containers</h1>
      <ContainersTable />
    </>
  );
}
