// The worker's entry module: scripts/build.sh installs it as build/worker/shim.mjs (the
// `main` of wrangler.toml) over worker-build's own, which re-exports the glue's default
// export: a `WorkerEntrypoint` class behind a `Proxy` whose `construct` trap builds, on
// every request, the class instance, a second `Proxy` around it and a fresh 12-method
// handler object, so that an instance made before a wasm re-initialization is rebuilt on
// its next property read. edgesync keeps nothing on that instance: it is a plain module
// worker, each call handing the class's own `fetch` / `scheduled` the `env` and `ctx` they
// read from `this`. The glue still checks for and re-initializes a terminated instance on
// every call into the wasm. Measured with bench/profile.mjs --kind health (issue #11): the
// old entry's frames were about 4.8% of the isolate's busy time; none remain.
import Glue from '../index.js';

const { fetch: onFetch, scheduled: onScheduled } = Glue.prototype;
if (typeof onFetch !== 'function' || typeof onScheduled !== 'function') {
  throw new Error('edgesync entry: the wasm-bindgen glue no longer has fetch and scheduled on its default export');
}

export default {
  fetch(request, env, ctx) {
    return onFetch.call({ env, ctx }, request);
  },
  scheduled(event, env, ctx) {
    return onScheduled.call({ env, ctx }, event);
  },
};
