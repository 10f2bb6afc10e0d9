// A cluster client load for test_reshape.py: ioredis's Cluster (which follows MOVED and ASK itself) writes
// io:<i> = x<i> and reads back one of the preloaded keys k:<n> = v<n>, one after the other, until its standard input
// closes; then prints one JSON line: requests, failures (every request that raised, and every wrong value), writes,
// closed_resent (below).
// SEEDS="host:port,...", PASSWORD and KEYS (how many k:<n> there are) come from the environment; NAT_MAP, when set,
// is ioredis's natMap as JSON ({"name:port": {"host": ..., "port": ...}}: the `make scale` test of tests/e2e/test_tls.py,
// whose nodes announce their names, reached from the host at 127.0.0.1). TLS_CA, TLS_CERT and TLS_KEY, when set, are
// the files of the CA and of the client's certificate and key: every connection is TLS then (the same e2e test).
"use strict";
const fs = require("fs");
const Redis = require("ioredis");

const seeds = process.env.SEEDS.split(",").map((s) => {
  const at = s.lastIndexOf(":");
  return { host: s.slice(0, at), port: Number(s.slice(at + 1)) };
});
const keys = Number(process.env.KEYS);
const tls = process.env.TLS_CA ? { ca: fs.readFileSync(process.env.TLS_CA), cert: fs.readFileSync(process.env.TLS_CERT),
  key: fs.readFileSync(process.env.TLS_KEY) } : undefined;
const cluster = new Redis.Cluster(seeds, {
  redisOptions: { password: process.env.PASSWORD, tls },
  maxRedirections: 64,
  retryDelayOnTryAgain: 50,
  retryDelayOnClusterDown: 100,
  natMap: process.env.NAT_MAP ? JSON.parse(process.env.NAT_MAP) : undefined,
});
let stop = false;
process.stdin.on("end", () => { stop = true; });
process.stdin.resume();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ioredis takes the slot map from whichever node it asks first. A node the cluster has just removed and reset
// answers CLUSTER SLOTS with no slots at all until it is stopped; ioredis then empties its own connection pool,
// reconnects from its seeds, and fails the commands it had in flight with "Connection is closed." (its
// refreshSlotsCache, 5.x). Such a request is ioredis's own doing: it is counted apart (`closed_resent`) and sent
// again, as the redis-py load does with that client's own ASK bug. SET and GET are safe to send twice.
let closedResent = 0;
async function request(fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (e.message !== "Connection is closed." || attempt === 10) throw e;
      closedResent++;
      await sleep(50);
    }
  }
}

async function run() {
  let i = 0;
  let requests = 0;
  const failures = [];
  while (!stop) {
    const key = `io:${i}`;
    try {
      await request(() => cluster.set(key, `x${i}`));
      i++;
      const n = Math.floor(Math.random() * keys);
      const value = await request(() => cluster.get(`k:${n}`));
      if (value !== `v${n}`) failures.push(["wrong value", `k:${n}`, String(value)]);
      requests += 2;
    } catch (e) {
      failures.push([e.name, key, String(e.message)]);
      await sleep(10);
    }
  }
  process.stdout.write(JSON.stringify({ requests, written: i, failures: failures.length,
    first: failures.slice(0, 10), closed_resent: closedResent }) + "\n");
  cluster.disconnect();
}

cluster.on("ready", () => { run().catch((e) => { console.error(e); process.exit(1); }); });
