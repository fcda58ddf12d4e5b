/* An order after checkout: its status polled until it settles or the polling gives up. */

import * as api from './api.js';
import { handleError } from './errors.js';
import { isOrderOpen, openOrder, orderTitle, showOrder, showSettled, showSlow } from './views/order.js';
import { toast } from './views/toasts.js';

const POLL_EVERY_MS = 500;

let order = null; // {sale, id, until}: the order being polled (in its sale), until a Date.now()
let pollTimer = 0;

/** sale: state's {name, path} the order was placed in, polled there whatever the shopper
    picks next. first: the checkout's reply, shown as pending until the first poll answers. */
export function startOrder(sale, id, until, first) {
  stopOrder();
  order = { sale, id, until };
  showOrder({ status: 'pending', ...(first || {}), order_id: id });
  openOrder();
  pollTimer = setTimeout(poll, POLL_EVERY_MS);
}

/** After sign-in: an order whose polling a 401 interrupted picks up where it left off. */
export function resumeOrder() {
  if (!order) return;
  openOrder();
  pollTimer = setTimeout(poll, 0);
}

export function stopOrder() {
  clearTimeout(pollTimer);
  order = null;
}

async function poll() {
  const polled = order;
  if (!polled) return;
  let wait = POLL_EVERY_MS;
  try {
    const reply = await api.getOrder(polled.sale, polled.id);
    if (order !== polled) return;
    showOrder(reply || {});
    if (reply && reply.status && reply.status !== 'pending') { finish(reply.status); return; }
  } catch (err) {
    if (order !== polled) return;
    if (err.status === 401) { handleError(err); return; } // the order stays: resumed after sign-in
    if (err.status === 429) wait = Math.max(wait, err.retryAfterMs);
    // Otherwise (a 404 just after checkout, a network blip) keep trying until the deadline.
  }
  if (Date.now() >= polled.until) {
    showSlow();
    finish(null);
    return;
  }
  pollTimer = setTimeout(poll, wait);
}

function finish(status) {
  stopOrder();
  showSettled();
  // The popup may have been hidden while pending: tell the result another way.
  if (status && !isOrderOpen()) {
    toast(`ORDER_${status.toUpperCase()}`, orderTitle(status), status === 'confirmed');
  }
}
