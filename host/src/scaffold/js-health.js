// {name}: a Bascule health interpreter in JavaScript (componentize-js).
// It starts healthy on 2xx and unhealthy otherwise; change `interpret`.
// Build with `./build.sh`, try it offline with `./test.sh`, then name it:
// `[pools.NAME.health] interpreter = "path/to/{file}.wasm"`.
//
// The WIT maps to JavaScript as jco does: names in camelCase, records as
// objects, `option<T>` as `T` or `undefined`, variants as `{ tag, val }`,
// an error result as a throw.

export const health = {
  configure(options, _kind) {
    if (options !== "{}") throw { message: "{name} takes no options" };
    // Reads no header or body, sends nothing of its own.
    return { headers: [], body: false, send: undefined, until: undefined };
  },

  interpret(outcome) {
    if (outcome.error !== undefined) return { tag: "unhealthy", val: outcome.error };
    if (outcome.status === undefined) return { tag: "healthy", val: "connected" };
    if (outcome.status >= 200 && outcome.status < 300) return { tag: "healthy", val: `${outcome.status}` };
    return { tag: "unhealthy", val: `status ${outcome.status}` };
  },
};
