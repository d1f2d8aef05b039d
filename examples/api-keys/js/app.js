// api-keys: a header filter in JavaScript (componentize-js) that lets
// through only requests carrying a known API key, and tells the backend
// whose key it was instead of passing the key on.
//
// Options (the filter's `options` in the config):
//   keys   = { "<key>" = "<client name>", ... }   (required, not empty)
//   header = "x-api-key"                            (where the key is)
//
// No key: 401 with `www-authenticate: ApiKey`. An unknown key: 403. A
// known key: forwarded with the key header removed and `x-client` set to
// the client's name.

let header = "x-api-key";
let clients = new Map();

function fail(message) {
  // An error result: jco maps a thrown value to `err`.
  throw { message };
}

export const filter = {
  configure(options) {
    let parsed;
    try {
      parsed = JSON.parse(options);
    } catch (error) {
      fail(`api-keys: options are not JSON: ${error}`);
    }
    if (parsed.header !== undefined) {
      if (typeof parsed.header !== "string" || !/^[a-z0-9-]+$/i.test(parsed.header)) {
        fail("api-keys: `header` must be a header name");
      }
      header = parsed.header.toLowerCase();
    }
    const keys = parsed.keys;
    if (typeof keys !== "object" || keys === null || Object.keys(keys).length === 0) {
      fail("api-keys: `keys` must map at least one key to a client name");
    }
    for (const [key, name] of Object.entries(keys)) {
      if (typeof name !== "string" || name.length === 0) fail(`api-keys: the name of a key must be text`);
      clients.set(key, name);
    }
    const unknown = Object.keys(parsed).filter((name) => name !== "keys" && name !== "header");
    if (unknown.length > 0) fail(`api-keys: unknown option \`${unknown[0]}\``);
    return {
      onRequest: { fields: {}, headers: [header], cookies: [] },
      onResponse: undefined,
      requestEdits: [],
      responseEdits: [],
    };
  },

  onRequest(request) {
    const given = (request.headers ?? []).filter(([name]) => name === header).map(([, value]) => value);
    if (given.length === 0) {
      return {
        tag: "respond",
        val: { status: 401, headers: [["www-authenticate", "ApiKey"]], body: "an API key is required\n" },
      };
    }
    const client = given.length === 1 ? clients.get(given[0]) : undefined;
    if (client === undefined) {
      return { tag: "respond", val: { status: 403, headers: [], body: "unknown API key\n" } };
    }
    return {
      tag: "forward",
      val: {
        headers: [
          { action: "remove", name: header, value: "" },
          { action: "set", name: "x-client", value: client },
        ],
        path: undefined,
      },
    };
  },

  onResponse(_request, _status, _headers) {
    return [];
  },
};
