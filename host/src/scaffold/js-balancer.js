// {name}: a Bascule balancer in JavaScript (componentize-js). It starts as
// a round robin; change `select`. Build with `./build.sh`, try it offline
// with `./test.sh`, then name it in a pool: `balancer = "path/to/{file}.wasm"`.
//
// The WIT maps to JavaScript as jco does: names in camelCase, records as
// objects, tuples as arrays, `option<T>` as `T` or `undefined`, flags as
// an object of booleans, `u64` as BigInt, an error result as a throw.

let backends = 0;
let turn = 0;

export const balance = {
  configure(options, _protocols) {
    if (options !== "{}") throw { message: "{name} takes no options" };
    // Reads nothing of the request: no field, header or cookie.
    return { fields: {}, headers: [], cookies: [] };
  },

  setBackends(_generation, list) {
    backends = list.length;
  },

  select(_request) {
    const count = Math.min(backends, 4);
    if (count === 0) return { count: 0, first: 0, second: 0, third: 0, fourth: 0 };
    // The backend whose turn it is, then the next ones as fallbacks.
    const first = turn % backends;
    turn += 1;
    const picks = [0, 1, 2, 3].map((n) => (n < count ? (first + n) % backends : 0));
    return { count, first: picks[0], second: picks[1], third: picks[2], fourth: picks[3] };
  },
};
