"use client";
import { JobsTable } from "../../components/jobs-table.tsx";

export default function JobsPage() {
  return (
    <>
      <h1>Jobs</h1>
      <JobsTable />
    </>
  );
}
