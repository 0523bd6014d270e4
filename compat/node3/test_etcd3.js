// The etcd3 npm client (v3 gRPC API, unmodified) against a server at http://$ETCD_HOST:$ETCD_PORT.
//
// Each test runs on its own keys; the script ends with "N passed, M failed".
'use strict';

const assert = require('assert');
const { Etcd3, EtcdLockFailedError } = require('etcd3');

const HOST = process.env.ETCD_HOST || '127.0.0.1';
const PORT = Number(process.env.ETCD_PORT);
if (!PORT) throw new Error('set ETCD_PORT');

const TEST_TIMEOUT_MS = 40000;

const clients = [];
function client() {
  const c = new Etcd3({
    hosts: `http://${HOST}:${PORT}`,
    // A deadline on every unary call, so that nothing in here can hang forever.
    defaultCallOptions: ctx => (ctx.isStream ? {} : { deadline: Date.now() + 10000 }),
  });
  clients.push(c);
  return c;
}

// Resolves with the value of the first `event` on `emitter` that satisfies `pred`, or
// rejects after `timeoutMs` (or on the emitter's 'error').
function nextEvent(emitter, event, pred, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
      emitter.removeListener('error', onError);
    };
    const onEvent = (...args) => {
      if (!pred(...args)) return;
      cleanup();
      resolve(args);
    };
    const onError = err => {
      cleanup();
      reject(new Error(`${what}: ${err && err.stack ? err.stack : err}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    emitter.on(event, onEvent);
    emitter.on('error', onError);
  });
}

// Collects a watcher's put/delete events, so that a test can wait for one it expects
// whether it arrived before or after the wait began.
function recorder(watcher) {
  const events = [];
  const emitter = new (require('events').EventEmitter)();
  for (const type of ['put', 'delete']) {
    watcher.on(type, (kv, prev) => {
      const e = { type, key: kv.key.toString(), value: kv.value.toString(), kv, prev };
      events.push(e);
      emitter.emit('event', e);
    });
  }
  watcher.on('error', err => emitter.emit('error', err));
  return {
    events,
    async wait(type, key, timeoutMs) {
      const what = `watch event ${type} ${key}`;
      const seen = events.find(e => e.type === type && e.key === key);
      if (seen) return seen;
      const [e] = await nextEvent(emitter, 'event', e => e.type === type && e.key === key, timeoutMs, what);
      return e;
    },
  };
}

async function waitUntil(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

const tests = {};

tests.serviceDiscovery = async () => {
  const c = client();
  const prefix = '/services/web/';
  const key1 = prefix + 'i-1';
  const key2 = prefix + 'i-2';

  // Instance 1: a 3 s lease the library keeps alive on its own (every ttl/3).
  const lease1 = c.lease(3);
  const lost = [];
  lease1.on('lost', err => lost.push(err));
  const id1 = await lease1.grant();
  assert.ok(id1 && id1 !== '0', `lease id ${id1}`);
  const put1 = await lease1.put(key1).value('10.0.0.1:8080');
  assert.ok(Number(put1.header.revision) > 0, JSON.stringify(put1.header));
  const all = await c.getAll().prefix(prefix).strings();
  assert.deepStrictEqual(all, { [key1]: '10.0.0.1:8080' });

  const watcher = await c.watch().prefix(prefix).withPreviousKV().create();
  const rec = recorder(watcher);
  try {
    // Kept alive past its TTL: at least three keepalives succeed over ~4.5 s.
    const started = Date.now();
    let keepalives = 0;
    lease1.on('keepaliveSucceeded', res => {
      keepalives++;
      assert.strictEqual(String(res.ID), id1);
      assert.strictEqual(String(res.TTL), '3');
    });
    await waitUntil(async () => {
      assert.strictEqual(await c.get(key1).string(), '10.0.0.1:8080', 'the kept-alive key disappeared');
      return keepalives >= 3 && Date.now() - started >= 4500;
    }, 15000, 'three keepalives on the 3 s lease');
    assert.deepStrictEqual(lost, []);

    // Instance 2: a 2 s lease with no keepalive, left to expire.
    const lease2 = c.lease(2, { autoKeepAlive: false });
    const id2 = await lease2.grant();
    const put2 = await lease2.put(key2).value('10.0.0.2:8080');
    const sawPut = await rec.wait('put', key2, 10000);
    assert.strictEqual(sawPut.value, '10.0.0.2:8080');
    assert.strictEqual(String(sawPut.kv.lease), id2);
    assert.strictEqual(String(sawPut.kv.version), '1');
    assert.strictEqual(String(sawPut.kv.mod_revision), String(put2.header.revision));
    assert.strictEqual(String(sawPut.kv.create_revision), String(put2.header.revision));
    assert.deepStrictEqual(await c.getAll().prefix(prefix).strings(), {
      [key1]: '10.0.0.1:8080',
      [key2]: '10.0.0.2:8080',
    });
    assert.deepStrictEqual(await c.getAll().prefix(prefix).keys(), [key1, key2]);
    assert.strictEqual(await c.getAll().prefix(prefix).count(), 2);

    const expired = await rec.wait('delete', key2, 15000);
    assert.ok(Number(expired.kv.mod_revision) > Number(put2.header.revision), JSON.stringify(expired.kv));
    assert.ok(expired.prev, 'a withPreviousKV() watch delivered no previous kv on delete');
    assert.strictEqual(expired.prev.value.toString(), '10.0.0.2:8080');
    assert.strictEqual(await c.get(key2).string(), null);
    assert.strictEqual(await c.get(key1).string(), '10.0.0.1:8080', 'instance 1 went with instance 2');

    // Instance 1 deregisters by revoking its lease.
    await lease1.revoke();
    assert.ok(lease1.revoked());
    const revoked = await rec.wait('delete', key1, 5000);
    assert.strictEqual(revoked.prev.value.toString(), '10.0.0.1:8080');
    assert.deepStrictEqual(await c.getAll().prefix(prefix).strings(), {});
    assert.deepStrictEqual(
      rec.events.map(e => `${e.type} ${e.key}`),
      [`put ${key2}`, `delete ${key2}`, `delete ${key1}`],
    );
  } finally {
    await watcher.cancel();
  }
};

tests.lock = async () => {
  const c1 = client();
  const c2 = client();
  const first = c1.lock('x');
  await first.acquire();
  const holder = await c1.get('x').exec();
  assert.strictEqual(holder.kvs.length, 1);
  assert.strictEqual(String(holder.kvs[0].lease), await first.leaseId());

  // The library does not queue: a second acquire while held fails (within its 1 s deadline).
  const second = c2.lock('x').options({ deadline: Date.now() + 1000 });
  const started = Date.now();
  await assert.rejects(second.acquire(), EtcdLockFailedError);
  assert.ok(Date.now() - started < 1500, 'the failed acquire took longer than its deadline');
  assert.strictEqual(String((await c1.get('x').exec()).kvs[0].lease), await first.leaseId());

  await first.release();
  assert.strictEqual(await c1.get('x').string(), null);
  const third = c2.lock('x');
  await third.acquire();
  assert.strictEqual(String((await c2.get('x').exec()).kvs[0].lease), await third.leaseId());
  await third.release();

  // lock.do(): acquire, run, release.
  assert.strictEqual(await c1.lock('y').do(async () => (await c1.get('y').exec()).kvs.length), 1);
  assert.strictEqual(await c1.get('y').string(), null);
};

tests.election = async () => {
  const c1 = client();
  const c2 = client();
  const c3 = client();
  // A campaign emits 'error' when it fails; with no listener Node would crash the script.
  const campaignErrors = [];
  const campaign1 = c1.election('e', 5).campaign('candidate-1');
  campaign1.on('error', err => campaignErrors.push(err));
  await nextEvent(campaign1, 'elected', () => true, 10000, 'candidate-1 elected');
  assert.strictEqual(await c3.election('e').leader(), 'candidate-1');

  const observer = await c3.election('e').observe();
  const changes = [];
  observer.on('change', leader => changes.push(leader));
  observer.on('error', err => campaignErrors.push(err));
  assert.strictEqual(observer.leader(), 'candidate-1');

  // Candidate 2 campaigns while 1 leads: it must wait behind 1's key.
  const campaign2 = c2.election('e', 5).campaign('candidate-2');
  campaign2.on('error', err => campaignErrors.push(err));
  let elected2 = false;
  campaign2.on('elected', () => { elected2 = true; });
  // '_isWaiting' is the library's own (pinned) signal that it is watching for the leader's
  // key to go away.
  const waiting2 = nextEvent(campaign2, '_isWaiting', () => true, 10000, 'candidate-2 waiting behind the leader');
  const key2 = await campaign2.getCampaignKey();
  await waitUntil(async () => (await c3.get(key2).string()) === 'candidate-2', 10000, 'candidate-2 key');
  await waiting2;
  assert.ok(!elected2, 'candidate-2 was elected while candidate-1 led');
  assert.strictEqual(await c3.election('e').leader(), 'candidate-1');

  // Candidate 1 resigns: leadership passes to 2, and the observer sees it.
  const sawElected2 = elected2 ? Promise.resolve() : nextEvent(campaign2, 'elected', () => true, 10000, 'candidate-2 elected');
  const sawChange = nextEvent(observer, 'change', v => v === 'candidate-2', 10000, 'observer change to candidate-2');
  await campaign1.resign();
  await sawElected2;
  await sawChange;
  assert.strictEqual(observer.leader(), 'candidate-2');
  assert.strictEqual(await c1.election('e').leader(), 'candidate-2');

  // Proclaim a new value as leader; then resign, leaving no leader.
  const sawProclaim = nextEvent(observer, 'change', v => v === 'candidate-2b', 10000, 'observer sees proclaim');
  await campaign2.proclaim('candidate-2b');
  await sawProclaim;
  const sawNone = nextEvent(observer, 'change', v => v === undefined, 10000, 'observer sees no leader');
  await campaign2.resign();
  await sawNone;
  assert.strictEqual(await c3.election('e').leader(), undefined);
  assert.deepStrictEqual(changes, ['candidate-2', 'candidate-2b', undefined]);
  assert.deepStrictEqual(campaignErrors, []);
  await observer.cancel();
};

tests.transaction = async () => {
  const c = client();
  await c.put('/node3/txn/k').value('v1');
  const ok = await c.if('/node3/txn/k', 'Value', '==', 'v1')
    .and('/node3/txn/k', 'Version', '==', 1)
    .then(c.put('/node3/txn/k').value('v2'))
    .else(c.put('/node3/txn/k').value('failed'))
    .commit();
  assert.strictEqual(ok.succeeded, true);
  const again = await c.if('/node3/txn/k', 'Value', '==', 'v1')
    .then(c.put('/node3/txn/k').value('v3'))
    .else(c.get('/node3/txn/k'))
    .commit();
  assert.strictEqual(again.succeeded, false);
  assert.strictEqual(again.responses[0].response_range.kvs[0].value.toString(), 'v2');
  const meta = (await c.get('/node3/txn/k').exec()).kvs[0];
  assert.strictEqual(String(meta.version), '2');
  assert.ok(Number(meta.mod_revision) > Number(meta.create_revision), JSON.stringify(meta));
};

async function main() {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of Object.entries(tests)) {
    const started = Date.now();
    let timer;
    try {
      // Every wait inside is bounded, but a stream call (watch, keepalive) has no deadline
      // of its own: bound the whole test so that a hang is reported against its name.
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${name} did not finish within ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
        }),
      ]);
      passed++;
      console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      console.log(err && err.stack ? err.stack : err);
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  for (const c of clients) c.close();
  return failed ? 1 : 0;
}

main().then(
  code => process.exit(code),
  err => {
    console.log(err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
