/*! relevo browser SDK — track events, identify, consent, decide. No build step.
 *
 *   <script src="https://relevo.example.com/sdk/relevo.js"></script>
 *   <script>
 *     relevo.init({endpoint: "https://relevo.example.com", writeKey: "pk_..."});
 *     relevo.track("view", {item_id: "sku-1"});
 *     relevo.identify("u-42");
 *     relevo.consent({personalization: true, analytics: false});
 *     relevo.decide("home_hero", {page: location.pathname}).then(render);
 *   </script>
 *
 * Events are queued and sent in batches (every `flushInterval` ms or `maxBatch` events),
 * and with navigator.sendBeacon when the page is hidden, so the last events of a visit
 * are not lost. 429 and 503 answers and network failures are retried with exponential
 * backoff (honouring Retry-After). Every event gets an `event_id` when tracked, so a
 * retry is deduplicated by the server. The anonymous id lives in first-party storage:
 * localStorage, else a first-party cookie (SameSite=Lax); no third-party cookie is used.
 *
 * Segment-style payloads map over: see `fromSegment` (docs/security.md has the table).
 */
(function (root, factory) {
  var relevo = factory(root);
  if (typeof module === "object" && module.exports) module.exports = relevo;
  else root.relevo = relevo;
})(typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var VERSION = "0.1.0";
  var ANON_KEY = "relevo_aid";
  var USER_KEY = "relevo_uid";
  var BEACON_MAX_BYTES = 60000; // browsers cap a beacon at 64 KiB
  var TOP_LEVEL = ["item_id", "items", "category", "value", "session_id", "decision_id"];
  var SEGMENT_TYPES = {
    "product viewed": "view",
    "product clicked": "click",
    "product added": "add_to_cart",
    "product removed": "remove_from_cart",
    "order completed": "purchase",
    "products searched": "search",
    "product list viewed": "view"
  };

  var config = null;
  var queue = [];
  var timer = null;
  var retryTimer = null;
  var backingOff = null;
  var attempts = 0;
  var sending = null;
  var userId = null;

  // -- ids and first-party storage ---------------------------------------------------
  function uuid() {
    var cryptoApi = root.crypto;
    if (cryptoApi && cryptoApi.randomUUID) return cryptoApi.randomUUID();
    var bytes = new Uint8Array(16);
    if (cryptoApi && cryptoApi.getRandomValues) cryptoApi.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  var storage = {
    get: function (key) {
      try {
        var value = root.localStorage.getItem(key);
        if (value) return value;
      } catch (e) { /* storage blocked: fall back to the cookie */ }
      var match = (root.document && root.document.cookie || "").match(new RegExp("(?:^|; )" + key + "=([^;]*)"));
      return match ? decodeURIComponent(match[1]) : null;
    },
    set: function (key, value) {
      try {
        if (value === null) root.localStorage.removeItem(key);
        else root.localStorage.setItem(key, value);
        return;
      } catch (e) { /* fall back to a first-party cookie */ }
      if (!root.document) return;
      var secure = root.location && root.location.protocol === "https:" ? "; Secure" : "";
      root.document.cookie = key + "=" + (value === null ? "" : encodeURIComponent(value)) +
        "; Path=/; SameSite=Lax; Max-Age=" + (value === null ? 0 : 31536000) + secure;
    }
  };

  function anonymousId() {
    var id = storage.get(ANON_KEY);
    if (!id) {
      id = uuid();
      storage.set(ANON_KEY, id);
    }
    return id;
  }

  // -- building events -----------------------------------------------------------------
  function clip(value, max) {
    return typeof value === "string" && value.length > max ? value.slice(0, max) : value;
  }

  function pageContext() {
    var context = {};
    if (root.location) context.page = clip(root.location.href, 2048);
    if (root.document && root.document.referrer) context.referrer = clip(root.document.referrer, 2048);
    if (root.navigator) {
      context.user_agent = clip(root.navigator.userAgent, 1024);
      if (root.navigator.language) context.locale = clip(root.navigator.language, 35);
    }
    return context;
  }

  function snakeCase(name) {
    return String(name).trim().replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "").toLowerCase().replace(/^([0-9])/, "e_$1") || "custom";
  }

  /** A Segment track/identify payload → relevo event fields. */
  function fromSegment(payload) {
    var event = {};
    var properties = Object.assign({}, payload.properties || payload.traits || {});
    if (payload.event) {
      var known = SEGMENT_TYPES[String(payload.event).toLowerCase()];
      event.type = known || snakeCase(payload.event);
    } else if (payload.type === "identify" || payload.traits) {
      event.type = "identify";
    }
    if (payload.userId != null) event.user_id = String(payload.userId);
    if (payload.anonymousId != null) event.anonymous_id = String(payload.anonymousId);
    if (payload.messageId != null) event.event_id = String(payload.messageId);
    if (payload.timestamp != null) {
      event.timestamp = payload.timestamp instanceof Date ? payload.timestamp.toISOString() : payload.timestamp;
    }
    if (properties.product_id != null && properties.item_id == null) {
      properties.item_id = String(properties.product_id);
      delete properties.product_id;
    }
    if (Array.isArray(properties.products) && properties.items == null) {
      properties.items = properties.products.map(function (p) {
        var line = {item_id: String(p.product_id != null ? p.product_id : p.item_id || p.sku)};
        if (p.quantity != null) line.quantity = p.quantity;
        if (p.price != null) line.price = p.price;
        if (p.category != null) line.category = p.category;
        return line;
      });
      delete properties.products;
    }
    ["revenue", "total"].forEach(function (name) {
      if (properties[name] != null && properties.value == null) {
        properties.value = properties[name];
        delete properties[name];
      }
    });
    var context = payload.context || {};
    var mapped = {};
    if (context.page && context.page.url) mapped.page = clip(context.page.url, 2048);
    if (context.page && context.page.referrer) mapped.referrer = clip(context.page.referrer, 2048);
    if (context.userAgent) mapped.user_agent = clip(context.userAgent, 1024);
    if (context.locale) mapped.locale = clip(context.locale, 35);
    return {event: event, properties: properties, context: mapped};
  }

  function buildEvent(type, props, extra) {
    var fields = {};
    var properties = Object.assign({}, props || {});
    var context = pageContext();
    if (type && typeof type === "object") { // a Segment payload
      var mapped = fromSegment(type);
      fields = mapped.event;
      properties = Object.assign(mapped.properties, properties);
      context = Object.assign(context, mapped.context);
      type = fields.type;
    }
    if (!type) throw new Error("relevo: an event needs a type");
    // no timestamp by default: the server's arrival time is immune to skewed device clocks
    var event = Object.assign({event_id: uuid(), type: snakeCase(type)}, fields);
    TOP_LEVEL.forEach(function (name) {
      if (properties[name] != null) {
        event[name] = properties[name];
        delete properties[name];
      }
    });
    if (properties.context && typeof properties.context === "object") {
      context = Object.assign(context, properties.context);
      delete properties.context;
    }
    if (!event.user_id && userId) event.user_id = userId;
    if (!event.anonymous_id) event.anonymous_id = anonymousId();
    event.context = context;
    if (Object.keys(properties).length) event.properties = properties;
    return Object.assign(event, extra || {});
  }

  // -- sending -------------------------------------------------------------------------
  function requireInit() {
    if (!config) throw new Error("relevo: call relevo.init({endpoint, writeKey}) first");
  }

  function delayFor(response) {
    var header = response && response.headers && response.headers.get("Retry-After");
    if (header && /^[0-9]+$/.test(header)) return Number(header) * 1000;
    var base = Math.min(config.maxBackoff, config.backoff * Math.pow(2, attempts));
    return base / 2 + Math.random() * base / 2;
  }

  function request(method, path, body, keepalive) {
    return root.fetch(config.endpoint + path, {
      method: method,
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + config.writeKey},
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive: !!keepalive,
      credentials: "omit"
    });
  }

  function retryable(status) { return status === 429 || status === 503; }

  /** Send what is queued; resolves when the server has it (or it was given up).
   * While backing off after a 429/503, nothing is sent: the retry timer drains the queue. */
  function flush() {
    requireInit();
    if (retryTimer !== null) return backingOff;
    if (sending) return sending.then(function () { return queue.length ? flush() : undefined; });
    if (!queue.length) return Promise.resolve();
    clearTimeout(timer);
    timer = null;
    var batch = queue.splice(0, config.maxBatch);
    sending = request("POST", "/v1/events", {events: batch}, true).then(function (response) {
      if (response.ok || !retryable(response.status)) {
        attempts = 0;
        if (!response.ok && config.debug) root.console.warn("relevo: events refused", response.status);
        return null;
      }
      return response;
    }, function () { return {headers: null}; }).then(function (failed) {
      sending = null;
      if (failed === null) return queue.length ? flush() : undefined;
      if (attempts >= config.maxRetries) { // give this batch up, go on with the rest
        attempts = 0;
        if (config.debug) root.console.warn("relevo: gave up on " + batch.length + " events");
        return queue.length ? flush() : undefined;
      }
      queue = batch.concat(queue); // in order; the server deduplicates the ids
      var wait = delayFor(failed);
      attempts += 1;
      backingOff = new Promise(function (resolve) {
        retryTimer = setTimeout(function () {
          retryTimer = null;
          resolve(flush());
        }, wait);
      });
      return backingOff;
    });
    return sending;
  }

  function schedule(delay) {
    if (timer === null) timer = setTimeout(flush, delay);
  }

  function enqueue(event, now) {
    queue.push(event);
    if (now || queue.length >= config.maxBatch) return flush();
    schedule(config.flushInterval);
    return Promise.resolve();
  }

  /** On page hide: hand the queue to the browser, which sends it even as the page goes. */
  function beacon() {
    if (!config || !queue.length) return;
    var url = config.endpoint + "/v1/events?key=" + encodeURIComponent(config.writeKey);
    var events = queue.splice(0, queue.length);
    while (events.length) {
      var chunk = [];
      while (events.length && JSON.stringify({events: chunk.concat([events[0]])}).length < BEACON_MAX_BYTES) {
        chunk.push(events.shift());
      }
      if (!chunk.length) chunk.push(events.shift()); // oversized alone: let the server judge
      var body = JSON.stringify({events: chunk});
      // text/plain is CORS-safelisted: no preflight, which a beacon could not do
      var sent = root.navigator && root.navigator.sendBeacon &&
        root.navigator.sendBeacon(url, new Blob([body], {type: "text/plain;charset=UTF-8"}));
      if (!sent) {
        root.fetch(url, {method: "POST", body: body, keepalive: true, credentials: "omit",
                         headers: {"Content-Type": "text/plain;charset=UTF-8"}}).catch(function () {});
      }
    }
  }

  function listen() {
    if (!root.addEventListener) return;
    root.addEventListener("pagehide", beacon);
    if (root.document) {
      root.document.addEventListener("visibilitychange", function () {
        if (root.document.visibilityState === "hidden") beacon();
      });
    }
  }

  // -- the public verbs ------------------------------------------------------------------
  var relevo = {
    VERSION: VERSION,

    /** init({endpoint, writeKey, flushInterval?, maxBatch?, maxRetries?, backoff?}) */
    init: function (options) {
      if (!options || !options.endpoint || !options.writeKey) {
        throw new Error("relevo.init needs {endpoint, writeKey}");
      }
      var first = config === null;
      config = {
        endpoint: String(options.endpoint).replace(/\/+$/, ""),
        writeKey: options.writeKey,
        flushInterval: options.flushInterval != null ? options.flushInterval : 2000,
        maxBatch: options.maxBatch || 50,
        maxRetries: options.maxRetries != null ? options.maxRetries : 6,
        backoff: options.backoff || 500,
        maxBackoff: options.maxBackoff || 30000,
        debug: !!options.debug
      };
      userId = storage.get(USER_KEY);
      anonymousId();
      if (first) listen();
      return relevo;
    },

    /** track(type, props) or track(segmentPayload): queue an event. */
    track: function (type, props) {
      requireInit();
      return enqueue(buildEvent(type, props));
    },

    /** identify(userId, traits?) or identify({userId, anonymousId?, traits?}). */
    identify: function (id, traits) {
      requireInit();
      var payload = id && typeof id === "object" ? id : {userId: id, traits: traits || {}};
      if (payload.userId == null) throw new Error("relevo.identify needs a user id");
      userId = String(payload.userId);
      storage.set(USER_KEY, userId);
      return enqueue(buildEvent(Object.assign({type: "identify"}, payload, {traits: payload.traits || {}})), true);
    },

    /** consent({personalization?, analytics?}): recorded at once (sent without waiting). */
    consent: function (purposes) {
      requireInit();
      var properties = {};
      ["personalization", "analytics"].forEach(function (name) {
        if (typeof purposes[name] === "boolean") properties[name] = purposes[name];
      });
      return enqueue(buildEvent("consent", properties), true);
    },

    /** decide(placement, context?, {k?}) → Promise of the decision (POST /v1/decide). */
    decide: function (placement, context, options) {
      requireInit();
      var body = {user_id: userId || anonymousId(), placement: placement, context: context || {}};
      if (options && options.k != null) body.k = options.k;
      var tries = 0;
      function attempt() {
        return request("POST", "/v1/decide", body).then(function (response) {
          if (retryable(response.status) && tries < config.maxRetries) {
            tries += 1;
            return new Promise(function (resolve) { setTimeout(resolve, delayFor(response)); }).then(attempt);
          }
          return response.json().then(function (answer) {
            if (!response.ok) {
              var error = new Error("relevo.decide: HTTP " + response.status);
              error.status = response.status;
              error.body = answer;
              throw error;
            }
            return answer;
          });
        });
      }
      // what the user just did should count in this decision
      return flush().then(attempt);
    },

    flush: flush,
    anonymousId: function () { return anonymousId(); },
    userId: function () { return userId; },

    /** Forget the user (log out): a new anonymous id, no user id. */
    reset: function () {
      userId = null;
      storage.set(USER_KEY, null);
      storage.set(ANON_KEY, null);
      anonymousId();
    },

    _fromSegment: fromSegment
  };
  return relevo;
});
