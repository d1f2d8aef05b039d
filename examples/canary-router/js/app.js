// The canary router, in JavaScript (componentize-js).
//
// A request with the header `x-canary: 1` or the cookie `canary=1` goes to
// a backend whose metadata says `track = "canary"`; every other request
// goes round robin over the other backends. When a side has no backend,
// the other side serves.
//
// The WIT maps to JavaScript as jco does: names in camelCase, records as
// objects, tuples as arrays, `option<T>` as `T` or `undefined`, flags as
// an object of booleans, `u64` as BigInt, and an error result as a thrown
// value.

const NONE = { count: 0, first: 0, second: 0, third: 0, fourth: 0 };

// The two tracks' backends, by index, and each track's turn.
const tracks = { canary: [], stable: [] };
const turns = { canary: 0, stable: 0 };

function isCanary(backend) {
  return backend.metadata.some(([key, value]) => key === "track" && value === "canary");
}

function wantsCanary(request) {
  const headers = request.headers ?? [];
  if (headers.some(([name, value]) => name === "x-canary" && value === "1")) return true;
  // The one declared cookie is the only value (no field is declared).
  const values = request.values ?? [];
  return values.length > 0 && values[0] === "1";
}

export const balance = {
  configure(options, _protocols) {
    if (options !== "{}") throw { message: "the canary router takes no options" };
    // Nothing but the header and the cookie is lifted into `select`.
    return { fields: {}, headers: ["x-canary"], cookies: ["canary"] };
  },

  setBackends(_generation, backends) {
    tracks.canary = [];
    tracks.stable = [];
    backends.forEach((backend, index) => {
      (isCanary(backend) ? tracks.canary : tracks.stable).push(index);
    });
  },

  select(request) {
    const wanted = wantsCanary(request) ? "canary" : "stable";
    const other = wanted === "canary" ? "stable" : "canary";
    const side = tracks[wanted].length > 0 ? tracks[wanted] : tracks[other];
    if (side.length === 0) return NONE;
    const start = turns[wanted] % side.length;
    turns[wanted] += 1;
    // The chosen backend, then the rest of its side in turn.
    const picks = [];
    for (let n = 0; n < Math.min(side.length, 4); n++) picks.push(side[(start + n) % side.length]);
    return {
      count: picks.length,
      first: picks[0] ?? 0,
      second: picks[1] ?? 0,
      third: picks[2] ?? 0,
      fourth: picks[3] ?? 0,
    };
  },
};
