import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TailDirs, TailPathError } from "../../src/tail/tail-dirs.js";
import { tempTailDir } from "../harness/tailer.js";

const root = tempTailDir();
const logs = root.file("logs");
const other = root.file("other");
mkdirSync(logs);
mkdirSync(other);
mkdirSync(path.join(logs, "sub"));
writeFileSync(path.join(logs, "app.log"), "x\n");
writeFileSync(path.join(logs, "sub", "deep.log"), "y\n");
writeFileSync(path.join(other, "secret"), "s\n");
symlinkSync(path.join(other, "secret"), path.join(logs, "out-link"));
symlinkSync(path.join(logs, "app.log"), path.join(logs, "in-link"));
symlinkSync(other, path.join(logs, "out-dir"));

afterAll(() => root.remove());

async function refusal(dirs: TailDirs, p: string): Promise<string> {
  try {
    await dirs.resolve(p);
  } catch (e) {
    if (e instanceof TailPathError) return e.kind;
    throw e;
  }
  return "accepted";
}

describe("TailDirs", () => {
  const dirs = new TailDirs([logs]);

  it("resolves paths inside, including a missing file (tail -F waits for it) and a symlink that stays inside", async () => {
    expect(await dirs.resolve("app.log")).toEqual({ display: "app.log", real: path.join(logs, "app.log"), exists: true });
    expect(await dirs.resolve("./sub//deep.log")).toMatchObject({ display: "sub/deep.log", exists: true });
    expect(await dirs.resolve("later.log")).toMatchObject({ exists: false, real: path.join(logs, "later.log") });
    expect(await dirs.resolve("in-link")).toMatchObject({ real: path.join(logs, "app.log") });
  });

  it("refuses escapes with denied and non-files with invalid", async () => {
    expect(await refusal(dirs, "../other/secret")).toBe("denied");
    expect(await refusal(dirs, "sub/../../other/secret")).toBe("denied");
    expect(await refusal(dirs, path.join(other, "secret"))).toBe("denied");
    expect(await refusal(dirs, "/proc/self/environ")).toBe("denied");
    expect(await refusal(dirs, "out-link")).toBe("denied");
    expect(await refusal(dirs, "out-dir/secret")).toBe("denied");
    expect(await refusal(dirs, "sub")).toBe("invalid");
    expect(await refusal(dirs, "")).toBe("invalid");
    expect(await refusal(dirs, "a\0b")).toBe("invalid");
    expect(await refusal(dirs, "nope/x.log")).toBe("missing");
    expect(await refusal(new TailDirs([]), "app.log")).toBe("denied");
  });

  it("with several directories, paths start with the directory's name", async () => {
    const two = new TailDirs([logs, other]);
    expect(await two.resolve("other/secret")).toMatchObject({ display: "other/secret", exists: true });
    expect(await refusal(two, "app.log")).toBe("missing");
    expect((await two.list()).map((f) => f.path)).toEqual(["logs/app.log", "logs/sub/deep.log", "other/secret"]);
  });

  it("lists regular files only, never following symlinks", async () => {
    expect((await dirs.list()).map((f) => f.path)).toEqual(["app.log", "sub/deep.log"]);
  });

  it("refuses a tail directory that does not exist", () => {
    expect(() => new TailDirs([root.file("missing")])).toThrow(/--tail-dir/);
  });
});
