// A tiny app: MixFetch (and its client) on the network the URL names, a message to
// itself, and a fetch of ?fetch= through the mixnet.
import { createMixFetch } from '@mixnet/worker-shim';

const q = new URLSearchParams(location.search);
const mf = await createMixFetch({
  directory: q.get('directory'),
  directoryKey: q.get('directoryKey'),
  mode: q.get('mode') ?? 'mixnet',
  extraRoots: q.get('ca') ?? undefined,
});
document.getElementById('address').textContent = mf.client.selfAddress;
mf.client.on('message', (m) => (document.getElementById('inbox').textContent = m.text()));
await mf.client.send(mf.client.selfAddress, 'hello through the mixnet');
const res = await mf.fetch(q.get('fetch'));
document.getElementById('fetched').textContent = `${res.status} ${await res.text()}`;
