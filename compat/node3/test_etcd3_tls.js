// The etcd3 npm client (unmodified) over TLS with a client certificate: its
// `credentials` option against a server at https://$ETCD_HOST:$ETCD_PORT whose client
// port asks for certificates the test CA ($PKI/ca.pem) signed.
'use strict';

const assert = require('assert');
const fs = require('fs');
const { Etcd3 } = require('etcd3');

const HOST = process.env.ETCD_HOST || '127.0.0.1';
const PORT = Number(process.env.ETCD_PORT);
const PKI = process.env.PKI;
if (!PORT || !PKI) throw new Error('set ETCD_PORT and PKI');

function client(withPair) {
  const credentials = { rootCertificate: fs.readFileSync(`${PKI}/ca.pem`) };
  if (withPair) {
    credentials.privateKey = fs.readFileSync(`${PKI}/client-key.pem`);
    credentials.certChain = fs.readFileSync(`${PKI}/client.pem`);
  }
  return new Etcd3({
    hosts: `https://${HOST}:${PORT}`,
    credentials,
    // A deadline on every unary call, so that nothing in here can hang forever.
    defaultCallOptions: ctx => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
  });
}

async function main() {
  const good = client(true);
  await good.put('tls/k').value('v');
  assert.strictEqual(await good.get('tls/k').string(), 'v');
  const lease = good.lease(30);
  await lease.put('tls/leased').value('x');
  await lease.revoke();
  assert.strictEqual(await good.get('tls/leased').string(), null);
  const watcher = await good.watch().key('tls/w').create();
  const seen = new Promise(resolve => watcher.on('put', kv => resolve(kv.value.toString())));
  await good.put('tls/w').value('1');
  assert.strictEqual(await seen, '1');
  await watcher.cancel();
  const bad = client(false);
  let refused = false;
  try {
    await bad.get('tls/k').string();
  } catch (e) {
    refused = true;
  }
  assert.ok(refused, 'a client without a certificate was served');
  good.close();
  bad.close();
  console.log('etcd3 over TLS: put, get, lease, watch; refused without a certificate');
  console.log('1 passed, 0 failed');
}

main().catch(e => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
