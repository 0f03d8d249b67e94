// Load generator for `npm run bench:api`, in a child process (api.ts forks it) so neither its
// event loop nor its garbage collector shares a thread or a heap with the server: CLIENTS
// concurrent keep-alive clients, each sending its next request when the last one answered, for
// DURATION ms. Sends back every latency (ms) and the count of non-200 answers over IPC.
import { Agent, request } from 'node:http'

process.once('message', async ({ base, key, paths, clients, durationMs }) => {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const url = new URL(base)
  const headers = { authorization: `Bearer ${key}` }
  const latencies = []
  let errors = 0
  const end = performance.now() + durationMs
  let next = 0
  const once = (path) =>
    new Promise((resolve, reject) => {
      const req = request({ agent, host: url.hostname, port: url.port, path, headers }, (res) => {
        res.on('data', () => {})
        res.on('end', () => resolve(res.statusCode))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
  async function client() {
    while (performance.now() < end) {
      const path = paths[next++ % paths.length]
      const t0 = performance.now()
      const status = await once(path)
      latencies.push(performance.now() - t0)
      if (status !== 200) errors++
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
  agent.destroy()
  process.send({ latencies, errors }, () => process.exit(0))
})
