-- AlterTable
ALTER TABLE "job_steps" ADD COLUMN     "params" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "result" JSONB;

-- CreateTable
CREATE TABLE "ssh_hosts" (
    "id" UUID NOT NULL,
    "host" TEXT NOT NULL,
    "port" INTEGER NOT NULL DEFAULT 22,
    "host_key_algorithm" TEXT NOT NULL,
    "host_key_fingerprint" TEXT NOT NULL,
    "username" TEXT,
    "credentials_sealed" TEXT,
    "node_id" UUID,
    "install_prefix" TEXT NOT NULL DEFAULT '/',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "ssh_hosts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ssh_hosts_host_port_key" ON "ssh_hosts"("host", "port");

-- AddForeignKey
ALTER TABLE "ssh_hosts" ADD CONSTRAINT "ssh_hosts_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "nodes"("id") ON DELETE SET NULL ON UPDATE CASCADE;
