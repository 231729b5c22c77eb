-- AlterTable
ALTER TABLE "nodes" ADD COLUMN     "labels" JSONB NOT NULL DEFAULT '{}';
