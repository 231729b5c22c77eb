"use client";
// A container's live usage (`docker stats`) as charts: CPU, memory, network and block I/O,
// from the node's stats stream over the browser socket. The last few minutes of readings
// stay in the browser (per container, across visits within the tab); the stream stops
// when the page is left.
import { useEffect, useRef, useState } from "react";
import type uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { StatsSample } from "../../agent/link/contract.ts";
import { liveSocket } from "../lib/live.ts";
import { bytes } from "./format.ts";

/** Readings kept per container: five minutes at one a second. */
const KEEP = 300;
const history = new Map<string, StatsSample[]>();

interface Point {
  t: number;
  cpu: number | null;
  mem: number;
  limit: number;
  rx: number | null;
  tx: number | null;
  rd: number | null;
  wr: number | null;
}

/** Rates from the cumulative counters of consecutive readings (a counter that went back means a restart: no rate). */
function points(samples: readonly StatsSample[]): Point[] {
  return samples.map((s, i) => {
    const prev = samples[i - 1];
    const dt = prev ? (s.time - prev.time) / 1000 : 0;
    const rate = (a: number, b: number | undefined) => (prev && dt > 0 && b !== undefined && a >= b ? (a - b) / dt : null);
    return {
      t: s.time / 1000,
      cpu: s.cpuPercent,
      mem: s.memoryUsage,
      limit: s.memoryLimit,
      rx: rate(s.netRx, prev?.netRx),
      tx: rate(s.netTx, prev?.netTx),
      rd: rate(s.blockRead, prev?.blockRead),
      wr: rate(s.blockWrite, prev?.blockWrite),
    };
  });
}

const perSecond = (v: number | null | undefined) => (v === null || v === undefined ? "—" : `${bytes(v)}/s`);

export function StatsCharts({ nodeId, containerId, running }: { nodeId: string; containerId: string; running: boolean }) {
  const key = `${nodeId}|${containerId}`;
  const [samples, setSamples] = useState<StatsSample[]>(() => history.get(key) ?? []);
  const [status, setStatus] = useState(running ? "connecting…" : "not running");

  useEffect(() => {
    if (!running) {
      setStatus("not running: no readings");
      return;
    }
    const socket = liveSocket();
    let sessionId: string | undefined;
    let gone = false;
    const onSample = (m: { sessionId: string; sample: StatsSample }) => {
      if (m.sessionId !== sessionId) return;
      const next = [...(history.get(key) ?? []), m.sample].slice(-KEEP);
      history.set(key, next);
      setSamples(next);
    };
    const onEnd = (m: { sessionId: string; error?: string }) => {
      if (m.sessionId === sessionId) setStatus(m.error ? `stopped: ${m.error}` : "the container stopped");
    };
    socket.on("stats.sample", onSample);
    socket.on("stats.end", onEnd);
    socket.emit("stats.follow", { nodeId, containerId }, (r) => {
      if (gone) {
        if (r.ok) socket.emit("stats.stop", { sessionId: r.sessionId });
        return;
      }
      if (r.ok) {
        sessionId = r.sessionId;
        setStatus("live");
      } else setStatus(r.error);
    });
    return () => {
      gone = true;
      if (sessionId) socket.emit("stats.stop", { sessionId });
      socket.off("stats.sample", onSample);
      socket.off("stats.end", onEnd);
    };
  }, [nodeId, containerId, running, key]);

  const pts = points(samples);
  const last = pts.at(-1);
  const xs = pts.map((p) => p.t);
  return (
    <section aria-label="live usage" data-testid="stats">
      <div className="row" style={{ marginBottom: 8 }}>
        <b>Usage</b>
        <span className="muted" data-testid="stats-status">
          {status}
        </span>
        <span className="muted">
          · {samples.length} readings, last {Math.round((KEEP * 1000) / 60_000)} minutes kept
        </span>
      </div>
      <div className="charts">
        <Chart
          title="CPU"
          value={last?.cpu === null || last?.cpu === undefined ? "—" : `${last.cpu.toFixed(1)} %`}
          testId="cpu"
          data={[xs, pts.map((p) => p.cpu)]}
          series={[{ label: "CPU %", stroke: "#0969da", fill: "rgba(9,105,218,.08)" }]}
          format={(v) => `${v.toFixed(0)} %`}
          floor={10}
        />
        <Chart
          title="Memory"
          value={last ? `${bytes(last.mem)} / ${bytes(last.limit)}` : "—"}
          testId="memory"
          data={[xs, pts.map((p) => p.mem)]}
          series={[{ label: "in use", stroke: "#8250df", fill: "rgba(130,80,223,.08)" }]}
          format={(v) => bytes(v)}
          floor={1024 * 1024}
        />
        <Chart
          title="Network"
          value={last ? `↓ ${perSecond(last.rx)} ↑ ${perSecond(last.tx)}` : "—"}
          testId="network"
          data={[xs, pts.map((p) => p.rx), pts.map((p) => p.tx)]}
          series={[
            { label: "received", stroke: "#1a7f37" },
            { label: "sent", stroke: "#bc4c00" },
          ]}
          format={(v) => `${bytes(v)}/s`}
          floor={10_000}
        />
        <Chart
          title="Block I/O"
          value={last ? `read ${perSecond(last.rd)} · write ${perSecond(last.wr)}` : "—"}
          testId="block-io"
          data={[xs, pts.map((p) => p.rd), pts.map((p) => p.wr)]}
          series={[
            { label: "read", stroke: "#0969da" },
            { label: "write", stroke: "#cf222e" },
          ]}
          format={(v) => `${bytes(v)}/s`}
          floor={10_000}
        />
      </div>
    </section>
  );
}

/** `floor`: the least top of the y axis, so an idle container's flat line is not scaled into noise. */
function Chart({
  title,
  value,
  testId,
  data,
  series,
  format,
  floor,
}: {
  title: string;
  value: string;
  testId: string;
  data: Array<Array<number | null>>;
  series: uPlot.Series[];
  format: (v: number) => string;
  floor: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(data);
  latest.current = data;
  const fmt = useRef(format);
  fmt.current = format;

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | undefined;
    // uPlot touches the DOM when it loads: only in the browser.
    void import("uplot").then(({ default: UPlot }) => {
      if (disposed || !box.current) return;
      const width = Math.max(240, box.current.clientWidth);
      plot.current = new UPlot(
        {
          width,
          height: 170,
          legend: { show: true },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(floor, max * 1.1)] } },
          axes: [{}, { values: (_u, splits) => splits.map((v) => fmt.current(v)), size: 70 }],
          series: [
            {},
            ...series.map((s) => ({ ...s, width: 1.5, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? "—" : fmt.current(v)) })),
          ],
        },
        latest.current as uPlot.AlignedData,
        box.current,
      );
      observer = new ResizeObserver(() => {
        if (box.current && plot.current) plot.current.setSize({ width: Math.max(240, box.current.clientWidth), height: 170 });
      });
      observer.observe(box.current);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Made once; the data arrives through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  return (
    <div className="card" data-testid={`chart-${testId}`}>
      <div className="row" style={{ justifyContent: "space-between" }}>
        <b>{title}</b>
        <span className="mono" data-testid={`${testId}-value`}>
          {value}
        </span>
      </div>
      <div ref={box} />
    </div>
  );
}
