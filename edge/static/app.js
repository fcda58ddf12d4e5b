/*
 * Flash storefront: vanilla JS, no build step, no external assets.
 *
 * Rules this file keeps:
 *  - Server strings only ever reach the DOM through textContent / attributes (see el()).
 *  - The server is the authority on stock, carts and time: the countdown comes from the
 *    server's deadline_ms - now_ms, never from a client guess of the hold length.
 *  - The cart id is created synchronously at the first add click, so parallel clicks share it.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- constants
  const PAGE_SIZE = 12;
  const CART_KEY = 'flash.cart';
  const POLL_EVERY_MS = 500;
  const POLL_FOR_MS = 60000;
  const WS_MIN_DELAY_MS = 500;
  const WS_MAX_DELAY_MS = 10000;
  const WS_HEALTHY_MS = 5000; // a socket open this long counts as a success for backoff
  const TOAST_MS = 4000;
  const LOW_STOCK = 5;
  const USERNAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

  const MESSAGES = {
    SOLDOUT: 'Sold out',
    LIMIT: 'You reached the per-customer limit',
    EXPIRED: 'Your cart expired; the items went back on sale',
    CLOSED: 'The sale is not open',
    RATE_LIMITED: 'Slow down a little',
    UNAUTHENTICATED: 'Please sign in to continue',
    EMPTY: 'Your cart is empty',
    NOSKU: 'This product is not part of the sale',
    NOCART: 'That cart no longer exists',
    BADSTATE: 'That cart was already checked out',
    NOTOWNER: 'That cart belongs to another account',
    NETWORK: 'Can’t reach the shop. Check your connection.',
  };
  // After these codes the cart id is useless on the server, so we drop it locally too.
  const CART_GONE = new Set(['EXPIRED', 'NOCART', 'BADSTATE', 'NOTOWNER']);

  const ORDER_TEXT = {
    pending: ['Order pending', 'We’re confirming your order. This usually takes a moment.'],
    confirmed: ['Order confirmed', 'Thank you! Your order went through.'],  // + unit count, see showOrder
    rejected: ['Order rejected', 'Sorry, the stock ran out before we could confirm your order. Your units were returned to the sale.'],
    expired: ['Order expired', 'The hold ran out before your order went through; the items went back on sale.'],
  };

  const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
  const formatMoney = (cents) => money.format((Number(cents) || 0) / 100);

  // ---------------------------------------------------------------- state
  const state = {
    user: null,
    page: Math.max(1, parseInt(new URLSearchParams(location.search).get('page'), 10) || 1),
    pages: 1,
    pageSeq: 0, // guards against an older page response overwriting a newer one
    products: [],
    stock: new Map(), // product id -> available units (latest known)
    cartId: null,
    cart: null,
    cartNow: 0, // server now_ms of the applied cart: replies may arrive out of order
    deadlineAt: 0, // performance.now() timestamp at which the hold ends
    tick: 0,
    inflight: 0,
    checkingOut: false,
    cooldownUntil: 0,
    coolTimer: 0,
    ws: null,
    wsAttempt: 0,
    wsTimer: 0,
    order: null,
    pollTimer: 0,
    lastFocus: null,
  };

  // ---------------------------------------------------------------- DOM helpers
  const $ = (id) => document.getElementById(id);

  /** Builds an element. Children strings become text nodes, so they are never parsed as HTML. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'class') node.className = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function initials(name) {
    const words = String(name || '').trim().split(/\s+/).filter(Boolean);
    const letters = words.slice(0, 2).map((w) => Array.from(w)[0].toUpperCase()).join('');
    return letters || '?';
  }

  /** Stable hue per product so the same product always gets the same placeholder colour. */
  function hueFor(id) {
    let n = Number(id);
    if (!Number.isFinite(n)) n = Array.from(String(id)).reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    return Math.round((n * 137.508) % 360); // golden angle: neighbouring ids look different
  }

  function announce(text) {
    $('sr-announcer').textContent = text;
  }

  function storageGet(key) {
    try { return JSON.parse(sessionStorage.getItem(key)); } catch { return null; }
  }
  function storageSet(key, value) {
    try {
      if (value == null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify(value));
    } catch { /* storage disabled (private mode): the in-memory state still works */ }
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, code, message, retryAfterMs) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfterMs = retryAfterMs;
    }
  }

  function parseRetryAfter(value) {
    if (!value) return 1000;
    const secs = Number(value);
    const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(value) - Date.now();
    return Math.min(60000, Math.max(500, ms || 1000));
  }

  /** fetch() wrapper: resolves with the JSON body on 2xx, throws ApiError otherwise. */
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'NETWORK', MESSAGES.NETWORK, 0);
    }
    const data = await res.json().catch(() => null); // 204s and proxy error pages have no JSON
    if (res.ok) return data;
    const fallback = res.status === 401 ? 'UNAUTHENTICATED' : res.status === 429 ? 'RATE_LIMITED' : `HTTP_${res.status}`;
    const code = (data && typeof data.error === 'string' && data.error) || fallback;
    const message = (data && data.message) || res.statusText || 'Something went wrong';
    throw new ApiError(res.status, code, message, parseRetryAfter(res.headers.get('Retry-After')));
  }

  function friendly(err) {
    if (err.code === 'RATE_LIMITED') return `${MESSAGES.RATE_LIMITED}: try again in ${Math.ceil(err.retryAfterMs / 1000)} s`;
    return MESSAGES[err.code] || err.message || 'Something went wrong';
  }

  /** One place that turns an error into UI: toast, sign-in, cooldown or dropping the cart. */
  function handleError(err) {
    if (!(err instanceof ApiError)) {
      toast('ERROR', 'Something went wrong');
      return;
    }
    if (err.status === 401 || err.code === 'UNAUTHENTICATED') {
      showSignIn();
      toast('UNAUTHENTICATED', MESSAGES.UNAUTHENTICATED);
      return;
    }
    if (err.code === 'RATE_LIMITED' || err.status === 429) startCooldown(err.retryAfterMs);
    if (CART_GONE.has(err.code)) forgetCart(err.code === 'EXPIRED' ? 'expired' : 'idle');
    toast(err.code, friendly(err));
  }

  // ---------------------------------------------------------------- toasts
  function toast(code, text, good = false) {
    const box = $('toasts');
    // Parallel requests tend to fail the same way: one toast per code is enough.
    for (const old of Array.from(box.children)) if (old.dataset.code === code) old.remove();
    const node = el('div', { class: good ? 'toast good' : 'toast', 'data-code': code }, text);
    box.append(node);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => {
      node.classList.add('leaving');
      setTimeout(() => node.remove(), 300);
    }, TOAST_MS);
  }

  // ---------------------------------------------------------------- rate limiting
  const coolingDown = () => Date.now() < state.cooldownUntil;

  /** Honors Retry-After: buttons that would hit the server stay disabled until it passes. */
  function startCooldown(ms) {
    state.cooldownUntil = Math.max(state.cooldownUntil, Date.now() + ms);
    clearTimeout(state.coolTimer);
    state.coolTimer = setTimeout(refreshButtons, state.cooldownUntil - Date.now() + 20);
    refreshButtons();
  }

  function refreshButtons() {
    for (const p of state.products) paintStock(p.id);
    for (const b of document.querySelectorAll('#cart-lines button')) b.disabled = coolingDown();
    refreshCheckout();
  }

  // ---------------------------------------------------------------- session
  // Replies to POST and GET /session are {user: {id, username}}.
  const userNameOf = (me) => (me && me.user && me.user.username) || '';

  async function checkSession() {
    try {
      signedIn(userNameOf(await api('GET', '/session')));
    } catch (err) {
      if (err.status === 401) showSignIn();
      else renderGridMessage('We couldn’t reach the shop.', checkSession);
    }
  }

  function signedIn(name) {
    state.user = name || 'you';
    $('user-name').textContent = state.user;
    $('user-avatar').textContent = initials(state.user).slice(0, 1);
    $('user-box').hidden = false;
    $('cart-button').hidden = false;
    $('signin').hidden = true;
    $('shop').hidden = false;
    loadSale();
    restoreCart();
    loadPage(state.page);
    connectWs();
    // An order whose polling a 401 interrupted picks up where it left off.
    if (state.order) {
      openModal();
      state.pollTimer = setTimeout(poll, 0);
    }
  }

  function showSignIn() {
    state.user = null;
    closeWs();
    closeDrawer();
    $('order-status').hidden = true; // polling resumes after sign-in (see signedIn)
    $('user-box').hidden = true;
    $('cart-button').hidden = true;
    $('shop').hidden = true;
    $('signin').hidden = false;
    $('signin-username').focus();
  }

  async function onSignIn(event) {
    event.preventDefault();
    const input = $('signin-username');
    const button = $('signin-submit');
    const name = input.value.trim();
    $('signin-error').textContent = '';
    if (!USERNAME_RE.test(name)) {
      $('signin-error').textContent = 'Use 1 to 64 letters, digits, “-”, “_” or “.”.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    button.disabled = true;
    try {
      const me = await api('POST', '/session', { username: name });
      signedIn(userNameOf(me) || name);
    } catch (err) {
      $('signin-error').textContent = friendly(err);
    } finally {
      button.disabled = false;
    }
  }

  async function onSignOut() {
    try {
      await api('DELETE', '/session');
    } catch (err) {
      if (err.status !== 401) { handleError(err); return; }
    }
    // The cart belongs to this user; the next one to sign in on this tab must not inherit it.
    forgetCart('idle');
    stopPolling();
    showSignIn();
  }

  // ---------------------------------------------------------------- sale info (optional endpoint)
  async function loadSale() {
    let sale;
    try { sale = await api('GET', '/sale'); } catch { return; } // absent or failing: keep the header plain
    if (!sale || typeof sale !== 'object') return;
    const pill = $('sale-status');
    const open = sale.open !== false;
    const name = String(sale.sale || 'Flash');
    pill.textContent = `${name.charAt(0).toUpperCase()}${name.slice(1)} sale · ${open ? 'Open' : 'Closed'}`;
    pill.dataset.open = String(open);
    pill.hidden = false;
    if (sale.hold_ms > 0) $('hold-time').textContent = describeDuration(sale.hold_ms);
    renderSaleBanner(sale, open);
  }

  function renderSaleBanner(sale, open) {
    const banner = $('sale-banner');
    banner.hidden = open;
    if (open) return;
    const now = Number(sale.now_ms) || Date.now();
    const when = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    if (sale.start_ms > now) banner.textContent = `The sale opens ${when(sale.start_ms)}.`;
    else if (sale.end_ms && sale.end_ms <= now) banner.textContent = 'The sale has ended. Thanks for stopping by.';
    else banner.textContent = 'The sale is not open right now.';
  }

  function describeDuration(ms) {
    const secs = Math.round(ms / 1000);
    if (secs < 120) return `${secs} seconds`;
    return `${Math.round(secs / 60)} minutes`;
  }

  // ---------------------------------------------------------------- catalog
  async function loadPage(page) {
    const seq = ++state.pageSeq;
    const grid = $('grid');
    grid.setAttribute('aria-busy', 'true');
    if (!grid.querySelector('.card')) renderSkeleton();
    let data;
    try {
      data = await api('GET', `/products/?skip=${(page - 1) * PAGE_SIZE}&limit=${PAGE_SIZE}`);
    } catch (err) {
      if (seq !== state.pageSeq) return;
      if (err.status === 401) { handleError(err); return; }
      renderGridMessage('We couldn’t load the products.', () => loadPage(page));
      return;
    }
    if (seq !== state.pageSeq) return; // a newer page request superseded this one
    const items = Array.isArray(data) ? data : (data && data.items) || [];
    const pages = data && (data.pages || (data.total != null ? Math.ceil(data.total / PAGE_SIZE) : 0));
    // Without page metadata, a full page is the only hint that another one may follow.
    state.pages = Math.max(1, pages || (items.length === PAGE_SIZE ? page + 1 : page));
    if (!items.length && page > 1) { loadPage(pages ? Math.min(pages, page - 1) : 1); return; } // stale ?page=
    state.page = page;
    state.products = items;
    for (const p of items) {
      const available = p.available ?? p.stock;
      if (Number.isFinite(available)) state.stock.set(Number(p.id), available);
    }
    renderGrid();
    renderPagination();
    subscribe();
    history.replaceState(null, '', page > 1 ? `?page=${page}` : location.pathname);
  }

  function renderSkeleton() {
    const card = () => el('div', { class: 'card skeleton', 'aria-hidden': 'true' },
      el('div', { class: 'card-art' }),
      el('div', { class: 'card-body' }, el('div', { class: 'bar' }), el('div', { class: 'bar short' })));
    $('grid').replaceChildren(...Array.from({ length: 8 }, card));
  }

  function renderGridMessage(text, retry) {
    const grid = $('grid');
    grid.setAttribute('aria-busy', 'false');
    const box = el('div', { class: 'grid-message', role: 'status' }, el('p', {}, text));
    if (retry) {
      const button = el('button', { type: 'button', class: 'btn btn-ghost' }, 'Try again');
      button.addEventListener('click', retry);
      box.append(button);
    }
    grid.replaceChildren(box);
    $('pagination').replaceChildren();
  }

  function renderGrid() {
    const grid = $('grid');
    grid.setAttribute('aria-busy', 'false');
    if (!state.products.length) { renderGridMessage('Nothing on sale yet. Check back soon.'); return; }
    grid.replaceChildren(...state.products.map(productCard));
    for (const p of state.products) paintStock(p.id);
  }

  function productCard(p) {
    const id = Number(p.id);
    return el('article', { class: 'card', 'data-product-id': id, 'aria-labelledby': `name-${id}` },
      el('div', { class: 'card-art', style: `--hue:${hueFor(id)}`, 'aria-hidden': 'true' }, initials(p.name)),
      el('div', { class: 'card-body' },
        el('h3', { class: 'card-name', id: `name-${id}` }, String(p.name ?? `Product ${id}`)),
        el('div', { class: 'card-meta' },
          el('p', { class: 'price' }, formatMoney(p.price_cents)),
          el('p', { class: 'stock', id: `stock-${id}` }, '…')),
        el('button', { type: 'button', class: 'btn btn-primary btn-block add', 'data-product-id': id }, 'Add to cart')));
  }

  /** Draws the stock badge and the add button of one card from state.stock. */
  function paintStock(id) {
    const badge = $(`stock-${Number(id)}`);
    if (!badge) return; // not on the current page
    const card = badge.closest('.card');
    const button = card.querySelector('.add');
    const n = state.stock.get(Number(id));
    const known = Number.isFinite(n);
    badge.textContent = !known ? '…' : n <= 0 ? 'Sold out' : `${n} left`;
    badge.classList.toggle('low', known && n > 0 && n < LOW_STOCK);
    badge.classList.toggle('out', known && n <= 0);
    card.classList.toggle('soldout', known && n <= 0);
    button.disabled = (known && n <= 0) || coolingDown();
    button.textContent = known && n <= 0 ? 'Sold out' : 'Add to cart';
  }

  function setStock(id, available) {
    id = Number(id);
    if (!Number.isFinite(id) || !Number.isFinite(available)) return;
    const before = state.stock.get(id);
    state.stock.set(id, available);
    if (before === available) return;
    paintStock(id);
    const badge = $(`stock-${id}`);
    if (badge && before !== undefined) {
      badge.classList.remove('flash');
      void badge.offsetWidth; // restart the highlight animation
      badge.classList.add('flash');
    }
    // Announce only the change that matters to a screen-reader user, not every tick.
    if (badge && before > 0 && available <= 0) {
      const product = state.products.find((p) => Number(p.id) === id);
      announce(`${product ? product.name : 'A product'} is sold out`);
    }
  }

  function renderPagination() {
    const nav = $('pagination');
    const { page, pages } = state;
    if (pages <= 1) { nav.replaceChildren(); return; }
    const button = (label, target, extra = {}) => el('button', {
      type: 'button', class: 'page-btn', 'data-page': target, disabled: target < 1 || target > pages, ...extra,
    }, label);
    const nodes = [button('Previous', page - 1, { 'aria-label': 'Previous page' })];
    let last = 0;
    for (const n of pageList(page, pages)) {
      if (n - last > 1) nodes.push(el('span', { class: 'page-gap', 'aria-hidden': 'true' }, '…'));
      nodes.push(button(String(n), n, { 'aria-current': n === page ? 'page' : null, 'aria-label': `Page ${n}` }));
      last = n;
    }
    nodes.push(button('Next', page + 1, { 'aria-label': 'Next page' }));
    nav.replaceChildren(...nodes);
  }

  /** First, last, and the current page with its neighbours; gaps become an ellipsis. */
  function pageList(page, pages) {
    const set = new Set([1, pages, page - 1, page, page + 1]);
    return Array.from(set).filter((n) => n >= 1 && n <= pages).sort((a, b) => a - b);
  }

  function goToPage(page) {
    if (page < 1 || page > state.pages || page === state.page) return;
    loadPage(page);
    window.scrollTo({ top: 0, behavior: 'smooth' });
  }

  // ---------------------------------------------------------------- live stock (WebSocket)
  function setLive(status) {
    const box = $('live-status');
    box.dataset.state = status;
    box.querySelector('.live-text').textContent =
      { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline' }[status];
  }

  function connectWs() {
    if (state.ws || !state.user) return;
    clearTimeout(state.wsTimer);
    setLive(state.wsAttempt ? 'reconnecting' : 'connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws/catalog`);
    } catch {
      scheduleReconnect();
      return;
    }
    let openedAt = 0;
    state.ws = ws;
    ws.onopen = () => {
      openedAt = performance.now();
      setLive('live');
      subscribe(); // also re-subscribes after a reconnect
    };
    ws.onmessage = (event) => onWsMessage(event.data);
    ws.onerror = () => { /* onclose follows and does the work */ };
    ws.onclose = () => {
      if (state.ws !== ws) return; // closed on purpose by closeWs()
      state.ws = null;
      // A server that accepts then drops us at once must not be hammered: only reset the
      // backoff after the socket has proved itself.
      if (openedAt && performance.now() - openedAt > WS_HEALTHY_MS) state.wsAttempt = 0;
      if (state.user) scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    const base = Math.min(WS_MAX_DELAY_MS, WS_MIN_DELAY_MS * 2 ** state.wsAttempt);
    state.wsAttempt += 1;
    // Jitter spreads out thousands of tabs reconnecting after the same server restart.
    const delay = base / 2 + Math.random() * (base / 2);
    setLive('reconnecting');
    clearTimeout(state.wsTimer);
    state.wsTimer = setTimeout(connectWs, delay);
  }

  function closeWs() {
    clearTimeout(state.wsTimer);
    const ws = state.ws;
    state.ws = null;
    state.wsAttempt = 0;
    // Closing a socket still connecting makes Chrome log an error; let it open, then close.
    if (ws && ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
    else if (ws) ws.close();
    setLive('offline');
  }

  /** Reconnect at once (skipping the backoff) when the tab returns or the network is back. */
  function reconnectNow() {
    if (!state.user || state.ws) return;
    state.wsAttempt = 0;
    connectWs();
  }

  function subscribe() {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ subscribe: state.products.map((p) => Number(p.id)) }));
  }

  function onWsMessage(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    // The answer to a subscribe may come as one message per product or as a list.
    const updates = Array.isArray(msg) ? msg : [msg];
    for (const u of updates) {
      if (u && u.product_id != null) setStock(u.product_id, Number(u.available));
    }
  }

  // ---------------------------------------------------------------- cart
  function newUuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // randomUUID only exists in secure contexts (https, localhost); plain-http hosts land here.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** Synchronous on purpose: clicks fired before the first reply must share one cart. */
  function ensureCartId() {
    if (!state.cartId) {
      state.cartId = newUuid();
      state.cartNow = 0;
      storageSet(CART_KEY, state.cartId);
    }
    return state.cartId;
  }

  async function restoreCart() {
    const id = storageGet(CART_KEY);
    if (typeof id !== 'string' || !id) return;
    state.cartId = id;
    try {
      applyCart(await api('GET', `/cart/${encodeURIComponent(id)}`));
      dropEmptyCart();
    } catch (err) {
      if (err.status === 401) return; // keep it: the same user may sign back in
      if (state.cartId === id && !state.cart) forgetCart('idle'); // 404, other owner, …
    }
  }

  async function changeQty(productId, op) {
    if (coolingDown()) { toast('RATE_LIMITED', MESSAGES.RATE_LIMITED); return; }
    const cartId = op === 'add' ? ensureCartId() : state.cartId;
    if (!cartId) return;
    state.inflight += 1;
    try {
      const reply = await api('POST', `/cart/${op}`, { product_id: productId, cart_id: cartId, qty: 1 });
      if (reply) {
        setStock(reply.product_id ?? productId, Number(reply.available));
        applyCart(reply.cart);
      }
      if (op === 'add') bumpBadge();
    } catch (err) {
      if (err.code === 'SOLDOUT' && op === 'add') setStock(productId, 0);
      // A late failure for a cart we already let go of has nothing left to tell the user.
      if (cartId !== state.cartId && CART_GONE.has(err.code)) return;
      handleError(err);
    } finally {
      state.inflight -= 1;
      dropEmptyCart();
    }
  }

  /** An empty cart is not worth a running timer: the next add starts a fresh one. */
  function dropEmptyCart() {
    if (state.inflight || !state.cartId || state.checkingOut) return;
    if (!state.cart || !(state.cart.units > 0)) forgetCart('idle');
  }

  function applyCart(cart) {
    if (!cart || cart.cart_id !== state.cartId) return; // a late reply for a cart we dropped
    const now = Number(cart.now_ms) || 0;
    if (now < state.cartNow) return; // an older state overtaken by a newer reply
    if (cart.state && cart.state !== 'held') { forgetCart('idle'); return; }
    state.cartNow = now;
    state.cart = cart;
    // Server time decides the deadline; the local clock only measures time since this reply.
    state.deadlineAt = performance.now() + (Number(cart.deadline_ms) - now);
    renderCart();
    startCountdown();
  }

  function forgetCart(holdState) {
    state.cartId = null;
    state.cart = null;
    state.cartNow = 0;
    storageSet(CART_KEY, null);
    stopCountdown(holdState);
    renderCart();
  }

  function renderCart() {
    const lines = ((state.cart && state.cart.lines) || []).filter((l) => l.qty > 0);
    const units = (state.cart && state.cart.units) || lines.reduce((n, l) => n + l.qty, 0);
    const total = lines.reduce((sum, l) => sum + l.price_cents * l.qty, 0);
    const badge = $('cart-count');
    badge.textContent = String(units);
    badge.dataset.empty = String(units === 0);
    $('cart-button').setAttribute('aria-label', `Cart, ${units} ${units === 1 ? 'item' : 'items'}`);
    $('cart-lines').replaceChildren(...lines.map(cartLine));
    $('cart-empty').hidden = lines.length > 0;
    $('cart-total').textContent = formatMoney(total);
    refreshCheckout();
  }

  function cartLine(line) {
    const id = Number(line.product_id);
    const name = String(line.name ?? `Product ${id}`);
    return el('li', { class: 'cart-line', 'data-product-id': id },
      el('span', { class: 'thumb', style: `--hue:${hueFor(id)}`, 'aria-hidden': 'true' }, initials(name)),
      el('div', { class: 'line-info' },
        el('p', { class: 'line-name' }, name),
        el('p', { class: 'line-price' }, `${formatMoney(line.price_cents)} each`)),
      el('p', { class: 'line-total' }, formatMoney(line.price_cents * line.qty)),
      el('div', { class: 'qty' },
        el('button', { type: 'button', class: 'icon-btn remove', 'data-product-id': id, 'aria-label': `Remove one ${name}`, disabled: coolingDown() }, '−'),
        el('span', { class: 'qty-n', 'aria-label': `Quantity ${line.qty}` }, String(line.qty)),
        el('button', { type: 'button', class: 'icon-btn increase', 'data-product-id': id, 'aria-label': `Add one more ${name}`, disabled: coolingDown() }, '+')));
  }

  function refreshCheckout() {
    const units = (state.cart && state.cart.units) || 0;
    $('checkout').disabled = units <= 0 || state.checkingOut || coolingDown();
  }

  function bumpBadge() {
    const badge = $('cart-count');
    badge.classList.remove('bump');
    void badge.offsetWidth; // restart the animation
    badge.classList.add('bump');
  }

  // ---------------------------------------------------------------- countdown (one per cart)
  function startCountdown() {
    if (!state.tick) state.tick = setInterval(tickCountdown, 250);
    tickCountdown();
  }

  function tickCountdown() {
    if (!state.cart) return;
    const left = state.deadlineAt - performance.now();
    if (left <= 0) { expireLocally(); return; }
    const secs = Math.ceil(left / 1000);
    const text = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
    if ($('countdown').textContent !== text) {
      $('countdown').textContent = text;
      $('cart-timer').textContent = text;
    }
    $('hold').dataset.state = secs <= 10 ? 'urgent' : 'running';
  }

  /** holdState: 'idle' hides the timer, 'expired' leaves "expired" on screen. */
  function stopCountdown(holdState) {
    clearInterval(state.tick);
    state.tick = 0;
    $('hold').dataset.state = holdState;
    $('countdown').textContent = holdState === 'expired' ? 'expired' : '0:00';
    $('cart-timer').textContent = '';
  }

  function expireLocally() {
    forgetCart('expired');
    toast('EXPIRED', MESSAGES.EXPIRED);
  }

  // ---------------------------------------------------------------- drawer
  function openDrawer() {
    state.lastFocus = document.activeElement;
    $('cart-drawer').classList.add('open');
    $('cart-drawer').setAttribute('aria-hidden', 'false');
    $('drawer-backdrop').hidden = false;
    $('cart-button').setAttribute('aria-expanded', 'true');
    $('cart-close').focus();
  }

  function closeDrawer() {
    const drawer = $('cart-drawer');
    if (!drawer.classList.contains('open')) return;
    const hadFocus = drawer.contains(document.activeElement);
    drawer.classList.remove('open');
    drawer.setAttribute('aria-hidden', 'true');
    $('drawer-backdrop').hidden = true;
    $('cart-button').setAttribute('aria-expanded', 'false');
    if (hadFocus && state.lastFocus && state.lastFocus.isConnected) state.lastFocus.focus();
  }

  // ---------------------------------------------------------------- checkout and order status
  async function onCheckout() {
    const cartId = state.cartId;
    if (!cartId || state.checkingOut) return;
    const button = $('checkout');
    state.checkingOut = true;
    button.textContent = 'Placing order…';
    refreshCheckout();
    try {
      const reply = await api('POST', '/cart/checkout', { cart_id: cartId });
      // The cart became an order: the next add must start a brand-new cart.
      if (state.cartId === cartId) forgetCart('idle');
      closeDrawer();
      startOrder(String((reply && reply.order_id) || cartId), Date.now() + POLL_FOR_MS, reply);
    } catch (err) {
      handleError(err);
    } finally {
      state.checkingOut = false;
      button.textContent = 'Checkout';
      refreshCheckout();
    }
  }

  function startOrder(id, until, first) {
    stopPolling();
    state.order = { id, until };
    showOrder({ status: 'pending', ...(first || {}), order_id: id });
    openModal();
    state.pollTimer = setTimeout(poll, POLL_EVERY_MS);
  }

  async function poll() {
    const order = state.order;
    if (!order) return;
    let wait = POLL_EVERY_MS;
    try {
      const reply = await api('GET', `/orders/${encodeURIComponent(order.id)}`);
      if (state.order !== order) return;
      showOrder(reply || {});
      if (reply && reply.status && reply.status !== 'pending') { finishOrder(reply.status); return; }
    } catch (err) {
      if (state.order !== order) return;
      if (err.status === 401) { handleError(err); return; } // state.order stays: resumed after sign-in
      if (err.status === 429) wait = Math.max(wait, err.retryAfterMs);
      // Otherwise (a 404 just after checkout, a network blip) keep trying until the deadline.
    }
    if (Date.now() >= order.until) {
      $('order-status-detail').textContent = 'This is taking longer than usual. Your units stay reserved while we confirm.';
      finishOrder(null);
      return;
    }
    state.pollTimer = setTimeout(poll, wait);
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.order = null;
  }

  function finishOrder(status) {
    stopPolling();
    $('order-close').textContent = 'Continue shopping';
    // The popup may have been hidden while pending: tell the result another way.
    if (status && $('order-status').hidden) {
      toast(`ORDER_${status.toUpperCase()}`, (ORDER_TEXT[status] || [`Order ${status}`])[0], status === 'confirmed');
    }
  }

  function showOrder(order) {
    const status = String(order.status || 'pending');
    const [title, detail] = ORDER_TEXT[status] || [`Order ${status}`, ''];
    const text = $('order-status-text');
    text.textContent = title;
    text.dataset.status = status;
    $('order-status').dataset.status = status;
    const units = Number(order.units) || 0;
    $('order-status-detail').textContent = status === 'confirmed' && units
      ? `Thank you! Your order of ${units} ${units === 1 ? 'unit' : 'units'} went through.` : detail;
    const lines = Array.isArray(order.lines) ? order.lines : [];
    $('order-lines').replaceChildren(...lines.map((l) => el('li', {},
      el('span', {}, `${Number(l.qty) || 0} × ${String(l.name ?? `Product ${l.product_id}`)}`),
      el('span', {}, l.price_cents != null ? formatMoney(l.price_cents * (Number(l.qty) || 0)) : ''))));
    $('order-id').textContent = order.order_id ? `Order ${order.order_id}` : '';
    $('order-close').textContent = status === 'pending' ? 'Hide' : 'Continue shopping';
  }

  function openModal() {
    const modal = $('order-status');
    if (!modal.hidden) return;
    state.lastFocus = document.activeElement;
    modal.hidden = false;
    $('order-close').focus();
  }

  function closeModal() {
    $('order-status').hidden = true;
    const back = state.lastFocus && state.lastFocus.isConnected ? state.lastFocus : $('main');
    back.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- wiring
  function bindEvents() {
    $('signin-form').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', onSignOut);
    $('grid').addEventListener('click', (event) => {
      const button = event.target.closest('button.add');
      if (button && !button.disabled) changeQty(Number(button.dataset.productId), 'add');
    });
    $('pagination').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-page]');
      if (button && !button.disabled) goToPage(Number(button.dataset.page));
    });
    $('cart-lines').addEventListener('click', (event) => {
      const button = event.target.closest('button.remove, button.increase');
      if (!button || button.disabled) return;
      changeQty(Number(button.dataset.productId), button.classList.contains('remove') ? 'remove' : 'add');
    });
    $('cart-button').addEventListener('click', openDrawer);
    $('cart-close').addEventListener('click', closeDrawer);
    $('drawer-backdrop').addEventListener('click', closeDrawer);
    $('checkout').addEventListener('click', onCheckout);
    $('order-close').addEventListener('click', closeModal);
    $('order-status').addEventListener('click', (event) => {
      if (event.target === event.currentTarget) closeModal();
    });
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      if (!$('order-status').hidden) closeModal();
      else closeDrawer();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') reconnectNow();
    });
    window.addEventListener('online', reconnectNow);
  }

  function boot() {
    bindEvents();
    renderSkeleton();
    renderCart();
    checkSession();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
