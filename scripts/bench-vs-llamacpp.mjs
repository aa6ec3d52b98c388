// Runs llama.cpp (as shipped prebuilt in node-llama-cpp) and `selfinstruct
// bench` on the same GGUF files, one after the other for every repetition so
// that both see the same machine state, and prints tokens/s side by side with
// their ratio. llama.cpp's tests follow llama-bench: ppN evaluates N random
// tokens in an empty context, tgN decodes N tokens one at a time.
//
//   node scripts/bench-vs-llamacpp.mjs --bin bin/selfinstruct -p 64 -n 32 -t 2 -r 3 model.gguf...
//
// node-llama-cpp must be resolvable (make bench-llamacpp installs it under
// out/llamacpp and sets NODE_PATH).
import {execFileSync} from "node:child_process";
import {createRequire} from "node:module";
import path from "node:path";

const args = process.argv.slice(2);
const opt = {bin: "bin/selfinstruct", p: 64, n: 32, t: 2, r: 3};
const models = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--bin") opt.bin = args[++i];
  else if (["-p", "-n", "-t", "-r"].includes(a)) opt[a.slice(1)] = +args[++i];
  else models.push(a);
}
if (models.length === 0) {
  console.error("usage: bench-vs-llamacpp.mjs [--bin B] [-p N] [-n N] [-t T] [-r R] model.gguf...");
  process.exit(2);
}

// node-llama-cpp is found through NODE_PATH, which ESM import ignores.
const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "noop.js"));
const {getLlama, LlamaLogLevel} = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

const mean = a => a.reduce((x, y) => x + y, 0) / a.length;
const randomTokens = n => Array.from({length: n}, () => 100 + Math.floor(Math.random() * 31000));

async function llamaCppOnce(seq) {
  await seq.clearHistory();
  let t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(randomTokens(opt.p));
  const pp = opt.p / ((performance.now() - t0) / 1000);
  await seq.clearHistory();
  let done = 0;
  t0 = performance.now();
  for await (const _ of seq.evaluate(randomTokens(1), {temperature: 0})) {
    if (++done >= opt.n) break;
  }
  const tg = opt.n / ((performance.now() - t0) / 1000);
  return {pp, tg};
}

function oursOnce(model) {
  const out = execFileSync(opt.bin, ["bench", "-m", model, "-p", String(opt.p), "-n", String(opt.n),
    "-t", String(opt.t), "-s", "1", "-r", "1", "--no-bandwidth", "--json"], {encoding: "utf8"});
  const res = JSON.parse(out);
  return {pp: res.find(r => r.test.startsWith("pp")).avg_ts, tg: res.find(r => r.test.startsWith("tg")).avg_ts};
}

const rows = [];
for (const model of models) {
  const m = await llama.loadModel({modelPath: model, gpuLayers: 0});
  const ctx = await m.createContext({contextSize: Math.max(512, opt.p + opt.n), batchSize: 512, threads: opt.t, sequences: 1});
  const seq = ctx.getSequence();
  await llamaCppOnce(seq); // warm-up
  const ref = {pp: [], tg: []}, ours = {pp: [], tg: []};
  for (let i = 0; i < opt.r; i++) {
    const a = await llamaCppOnce(seq);
    const b = oursOnce(model);
    ref.pp.push(a.pp); ref.tg.push(a.tg); ours.pp.push(b.pp); ours.tg.push(b.tg);
  }
  await ctx.dispose();
  await m.dispose();
  for (const test of ["pp", "tg"]) {
    rows.push({model: path.basename(model), test: `${test}${test === "pp" ? opt.p : opt.n}`, threads: opt.t,
      llamacpp_ts: mean(ref[test]), selfinstruct_ts: mean(ours[test]), ratio: mean(ours[test]) / mean(ref[test]),
      llamacpp_samples: ref[test], selfinstruct_samples: ours[test]});
  }
}
console.log(`| ${"model".padEnd(26)} | test | threads | llama.cpp t/s | selfinstruct t/s | ratio |`);
console.log(`| ${"---".padEnd(26)} | ---: | ---: | ---: | ---: | ---: |`);
for (const r of rows) {
  console.log(`| ${r.model.padEnd(26)} | ${r.test} | ${r.threads} | ${r.llamacpp_ts.toFixed(2)} | ${r.selfinstruct_ts.toFixed(2)} | ${r.ratio.toFixed(2)}x |`);
}
if (process.env.BENCH_JSON) console.log(JSON.stringify(rows));
process.exit(0);
