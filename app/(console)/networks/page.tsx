"use client";
import { NetworksTable } from "../../components/inventory-tables.tsx";

export default function NetworksPage() {
  return (
    <>
      <h1>Networks</h1>
      <NetworksTable />
    </>
  );
}
