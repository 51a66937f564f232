// Bundles the web app's TypeScript (web/src) into web/dist beside the engine that
// `cargo xtask web` put in web/dist/pkg. The engine's bindings stay a file of their own
// ("missive-engine" in the sources): they load the .wasm next to them.
import { build } from "esbuild";

const engine = {
  name: "missive-engine",
  setup(b) {
    b.onResolve({ filter: /^missive-engine$/ }, () => ({
      path: "./pkg/missive_web.js",
      external: true,
    }));
  },
};

await build({
  entryPoints: {
    app: "src/main.tsx",
    worker: "src/worker.ts",
    engine: "src/engine-page.ts",
  },
  outdir: "dist",
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: process.argv.includes("--release"),
  sourcemap: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  plugins: [engine],
  logLevel: "warning",
});
