-- DropIndex
DROP INDEX "job_steps_job_id_node_id_seq_key";

-- CreateIndex
CREATE INDEX "job_steps_job_id_seq_idx" ON "job_steps"("job_id", "seq");
