"use client";
// Build an image on one node: a Dockerfile edited here, an optional context archive, then
// optionally push the tags and pull them on other nodes, all as one job.
import { useRouter } from "next/navigation";
import { useId, useState, type FormEvent } from "react";
import { trpc } from "../../../lib/trpc.ts";
import { ApiError, useCan } from "../../../components/action-bar.tsx";
import { NodeMultiSelect, NodeSelect } from "../../../components/node-picker.tsx";
import { Field, LinesField, TextField } from "../../../components/ui.tsx";

/** The server's limit (MAX_BUILD_CONTEXT_BYTES): checked here too, so a big file is refused before it is read. */
const MIB = 1024 * 1024;
const MAX_CONTEXT = 64 * MIB;

const EXAMPLE = `FROM busybox
WORKDIR /app
RUN echo "built by Berth" > /app/message
CMD ["cat", "/app/message"]
`;

const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

function toBase64(buf: ArrayBuffer): string {
  const b = new Uint8Array(buf);
  let s = "";
  // In slices: String.fromCharCode takes a bounded number of arguments.
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export default function BuildPage() {
  const can = useCan();
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  const router = useRouter();
  const id = useId();
  const [nodeId, setNodeId] = useState("");
  const [dockerfile, setDockerfile] = useState(EXAMPLE);
  const [file, setFile] = useState<File | null>(null);
  const [tags, setTags] = useState("");
  const [buildArgs, setBuildArgs] = useState("");
  const [target, setTarget] = useState("");
  const [noCache, setNoCache] = useState(false);
  const [pull, setPull] = useState(false);
  const [network, setNetwork] = useState("bridge");
  const [push, setPush] = useState(false);
  const [distribute, setDistribute] = useState(false);
  const [targets, setTargets] = useState<string[]>([]);
  const [formError, setFormError] = useState<string | null>(null);
  const [reading, setReading] = useState(false);
  const build = trpc.jobs.build.useMutation({ onSuccess: (r) => router.push(`/jobs/${r.jobId}`) });

  if (me.data && !can.operate) {
    return (
      <>
        <h1>Build an image</h1>
        <p className="muted">Building images needs the operator or admin role.</p>
      </>
    );
  }

  async function submit(e: FormEvent) {
    e.preventDefault();
    setFormError(null);
    const args: Record<string, string> = {};
    for (const l of lines(buildArgs)) {
      const eq = l.indexOf("=");
      if (eq <= 0) {
        setFormError(`build arg "${l}": write NAME=value`);
        return;
      }
      args[l.slice(0, eq)] = l.slice(eq + 1);
    }
    if (file && file.size > MAX_CONTEXT) {
      setFormError(
        `the context archive ${file.name} is ${(file.size / MIB).toFixed(1)} MiB; a build through the console takes at most ${MAX_CONTEXT / MIB} MiB`,
      );
      return;
    }
    let context: { name: string; contentBase64: string } | undefined;
    if (file) {
      setReading(true);
      try {
        context = { name: file.name, contentBase64: toBase64(await file.arrayBuffer()) };
      } finally {
        setReading(false);
      }
    }
    build.mutate({
      nodeId,
      dockerfile,
      ...(context ? { context } : {}),
      tags: tags.split(/[\s,]+/).filter(Boolean),
      buildArgs: args,
      ...(target.trim() ? { target: target.trim() } : {}),
      noCache,
      pull,
      networkMode: network.trim() || "bridge",
      push: push || distribute,
      distributeTo: distribute ? targets : [],
    });
  }

  const f = (s: string) => `${id}-${s}`;
  return (
    <>
      <h1>Build an image</h1>
      <form className="panel" onSubmit={(e) => void submit(e)} style={{ maxWidth: 960 }} aria-label="build an image">
        <LinesField label="Dockerfile" id={f("dockerfile")} value={dockerfile} onChange={setDockerfile} rows={14} mono required spellCheck={false} />
        <div className="grid2">
          <Field label="Node">
            <NodeSelect id={f("node")} value={nodeId} onChange={setNodeId} />
          </Field>
          <Field label="Context archive (.tar, .tar.gz; optional, at most 64 MiB)">
            <input
              id={f("context")}
              type="file"
              accept=".tar,.tgz,.tar.gz,application/x-tar,application/gzip"
              onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            />
          </Field>
          <TextField
            label="Tags"
            id={f("tags")}
            value={tags}
            onChange={setTags}
            placeholder="optional: 127.0.0.1:5000/team/app:1.0 (several: space or comma)"
          />
          <LinesField label="Build args" id={f("args")} value={buildArgs} onChange={setBuildArgs} placeholder="one per line: NAME=value" rows={3} mono />
          <TextField label="Target stage" id={f("target")} value={target} onChange={setTarget} placeholder="optional: the last stage" />
          <TextField label="Network for RUN" id={f("network")} value={network} onChange={setNetwork} list={f("networks")} />
          <datalist id={f("networks")}>
            {["bridge", "none", "host"].map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
        </div>
        <p className="row">
          <label className="row">
            <input type="checkbox" checked={noCache} onChange={(e) => setNoCache(e.target.checked)} /> no cache
          </label>
          <label className="row">
            <input type="checkbox" checked={pull} onChange={(e) => setPull(e.target.checked)} /> always pull the base images
          </label>
          <label className="row">
            <input type="checkbox" checked={push || distribute} disabled={distribute} onChange={(e) => setPush(e.target.checked)} /> push the tags to their
            registry
          </label>
          <label className="row">
            <input type="checkbox" checked={distribute} onChange={(e) => setDistribute(e.target.checked)} /> distribute to other nodes
          </label>
        </p>
        {distribute && (
          <Field label="Distribute to">
            <NodeMultiSelect id={f("targets")} value={targets} onChange={setTargets} exclude={nodeId ? [nodeId] : []} />
          </Field>
        )}
        <p className="muted">
          Pushing uses the credentials of the tag&apos;s registry in Admin → Registries; distributing pushes, then pulls on the chosen nodes.
          {!can.admin && " The host network for RUN only where your node group's host access allows it."}
        </p>
        {formError && (
          <div className="error" role="alert">
            {formError}
          </div>
        )}
        <ApiError error={build.error} />
        <p className="row">
          <button type="submit" className="primary" disabled={build.isPending || reading}>
            Build
          </button>
          {(build.isPending || reading) && <span className="muted">{reading ? "reading the archive…" : "starting…"}</span>}
        </p>
      </form>
    </>
  );
}
