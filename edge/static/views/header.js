/* The status of the sale (the header's pill, the hold time, the closed-sale and waiting-room
   banners) and of
   the live stock socket (the header's live indicator). */

import { $ } from './dom.js';

/** sale: the reply of GET /sale. */
export function showSale(sale) {
  const pill = $('sale-status');
  const open = sale.open !== false;
  const name = String(sale.sale || 'Flash');
  pill.textContent = `${name.charAt(0).toUpperCase()}${name.slice(1)} sale · ${open ? 'Open' : 'Closed'}`;
  pill.dataset.open = String(open);
  pill.hidden = false;
  if (sale.hold_ms > 0) $('hold-time').textContent = describeDuration(sale.hold_ms);
  showSaleBanner(sale, open);
  showQueueBanner(sale);
}

/** A sale with a waiting room says so, and how places are given, with a button to join. */
function showQueueBanner(sale) {
  const banner = $('queue-banner');
  const now = Number(sale.now_ms) || Date.now();
  const ended = sale.end_ms && sale.end_ms <= now;
  banner.hidden = !sale.queue || Boolean(ended);
  if (banner.hidden) return;
  $('queue-banner-text').textContent = sale.start_ms > now
    ? 'This sale has a waiting room. Everyone who joins before it opens gets a place drawn at random when it does; after that, first come, first served.'
    : 'This sale has a waiting room: shoppers are let in a few at a time, first come, first served.';
}

/** Another sale was picked: nothing of the last one's stays on screen until its own arrives. */
export function clearSale() {
  $('sale-status').hidden = true;
  $('sale-banner').hidden = true;
  $('queue-banner').hidden = true;
}

function showSaleBanner(sale, open) {
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

const LIVE_TEXT = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline' };

/** status: 'live', 'connecting', 'reconnecting' or 'offline'. */
export function setLive(status) {
  const box = $('live-status');
  box.dataset.state = status;
  box.querySelector('.live-text').textContent = LIVE_TEXT[status];
}
