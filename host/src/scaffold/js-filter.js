// {name}: a Bascule header filter in JavaScript (componentize-js). It
// starts by tagging requests with `x-{name}: 1` and answering 403 to those
// with `x-block: 1`; change `onRequest`. Build with `./build.sh`, try it
// offline with `./test.sh`, then declare it:
// `[filters.NAME] plugin = "path/to/{file}.wasm"`.
//
// The WIT maps to JavaScript as jco does: names in camelCase, records as
// objects, tuples as arrays, `option<T>` as `T` or `undefined`, variants
// as `{ tag, val }`, an error result as a throw.

export const filter = {
  configure(options) {
    if (options !== "{}") throw { message: "{name} takes no options" };
    // `onRequest` is called, with the `x-block` header.
    return {
      onRequest: { fields: {}, headers: ["x-block"], cookies: [] },
      onResponse: undefined,
      requestEdits: [],
      responseEdits: [],
    };
  },

  onRequest(request) {
    const blocked = (request.headers ?? []).some(([name, value]) => name === "x-block" && value === "1");
    if (blocked) return { tag: "respond", val: { status: 403, headers: [], body: "blocked" } };
    return {
      tag: "forward",
      val: { headers: [{ action: "set", name: "x-{name}", value: "1" }], path: undefined },
    };
  },

  onResponse(_request, _status, _headers) {
    // Not called: `configure` declares no response phase.
    return [];
  },
};
