/**
 * Layer tars that try to escape the layer directory or create device nodes,
 * one attack per layer, for tests that pull them and check that nothing was
 * written anywhere (see raw-images.ts for how they get into a registry).
 */
import type { RawEntry } from "./raw-images.ts";

export interface EvilLayerCase {
  /** A short slug, usable in repository names. */
  slug: string;
  title: string;
  entries: RawEntry[];
  /** The entry (tar name) the pull error must name. */
  offending: string;
}

/**
 * The escapes a layer can attempt. `outsideDir` is an empty directory outside
 * the agent's data root that must stay empty (the symlink case points there).
 */
export function evilLayerCases(outsideDir: string): EvilLayerCase[] {
  const plain = (name: string, content = "pwned\n"): RawEntry => ({ name, type: "file", mode: 0o644, content });
  return [
    {
      slug: "dotdot",
      title: "a name climbing out with ../",
      entries: [{ name: "ok/", type: "directory" }, plain("../evil")],
      offending: "../evil",
    },
    {
      slug: "dotdot-inner",
      title: "a name climbing out through a/../../",
      entries: [{ name: "a/", type: "directory" }, plain("a/../../evil")],
      offending: "a/../../evil",
    },
    {
      slug: "symlink-parent",
      title: "a file written through a symlink to an outside directory",
      entries: [{ name: "lnk", type: "symlink", linkname: outsideDir }, plain("lnk/evil")],
      offending: "lnk/evil",
    },
    {
      slug: "hardlink-dotdot",
      title: "a hard link to ../../etc/passwd",
      entries: [{ name: "passwd-link", type: "link", linkname: "../../etc/passwd" }],
      offending: "passwd-link",
    },
    {
      slug: "hardlink-abs",
      title: "a hard link to /etc/passwd",
      entries: [{ name: "passwd-link", type: "link", linkname: "/etc/passwd" }],
      offending: "passwd-link",
    },
    {
      slug: "blockdev",
      title: "a block device",
      entries: [
        { name: "dev/", type: "directory" },
        { name: "dev/sda", type: "block-device", mode: 0o660, devmajor: 8, devminor: 0 },
      ],
      offending: "dev/sda",
    },
    {
      slug: "chardev",
      title: "a character device other than 0/0",
      entries: [
        { name: "dev/", type: "directory" },
        { name: "dev/mem", type: "character-device", mode: 0o640, devmajor: 1, devminor: 1 },
      ],
      offending: "dev/mem",
    },
  ];
}
