// Bundle src/ (and the clients generated into gen/) into dist/: app.js, app.css, index.html.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outfile: "dist/app.js",
  logLevel: "warning",
});
for (const file of ["index.html", "app.css", "favicon.svg"]) copyFileSync(`src/${file}`, `dist/${file}`);
