/* The hold's countdown, in the drawer and on the cart button: one timer per cart. It counts
   to the deadline the server gave (deadline_ms - now_ms), never to a client guess. */

import { $ } from './dom.js';
import { heldCart, holdEndsAt } from '../state.js';

let ticker = 0;
let whenExpired = () => {};

/** Runs the countdown of the cart in state; onExpire is called once the hold has run out. */
export function startCountdown(onExpire) {
  whenExpired = onExpire;
  if (!ticker) ticker = setInterval(tick, 250);
  tick();
}

function tick() {
  if (!heldCart()) return;
  const left = holdEndsAt() - performance.now();
  if (left <= 0) { whenExpired(); return; }
  const secs = Math.ceil(left / 1000);
  const text = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
  if ($('countdown').textContent !== text) {
    $('countdown').textContent = text;
    $('cart-timer').textContent = text;
  }
  $('hold').dataset.state = secs <= 10 ? 'urgent' : 'running';
}

/** holdState: 'idle' hides the timer, 'expired' leaves "expired" on screen. */
export function stopCountdown(holdState) {
  clearInterval(ticker);
  ticker = 0;
  $('hold').dataset.state = holdState;
  $('countdown').textContent = holdState === 'expired' ? 'expired' : '0:00';
  $('cart-timer').textContent = '';
}
