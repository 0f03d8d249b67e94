// Load generator for `npm run bench:api`, in a worker thread so it does not share the server's
// event loop: CLIENTS concurrent keep-alive clients, each sending its next request when the last
// one answered, for DURATION ms. Posts back every latency (ms) and the count of non-200 answers.
import { parentPort, workerData } from 'node:worker_threads'

const { base, key, paths, clients, durationMs } = workerData
const latencies = []
let errors = 0
const end = performance.now() + durationMs
let next = 0
async function client() {
  while (performance.now() < end) {
    const path = paths[next++ % paths.length]
    const t0 = performance.now()
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${key}` } })
    await res.arrayBuffer()
    latencies.push(performance.now() - t0)
    if (res.status !== 200) errors++
  }
}
await Promise.all(Array.from({ length: clients }, client))
parentPort.postMessage({ latencies, errors })
