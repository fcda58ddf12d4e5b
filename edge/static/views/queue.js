/* The waiting room's page over the shop: the shopper's place, how many wait, and the
   estimate, redrawn from each place the server pushes. */

import { $ } from './dom.js';

/** place: the server's {state, position, line, eta_ms, now_ms}; commitment: the seed's
    SHA-1 published with the sale (so the draw can be checked after the sale opens). */
export function showWaiting(place, commitment) {
  $('waiting').hidden = false;
  $('waiting').dataset.state = place.state;
  const early = place.state === 'early';
  $('waiting-position').textContent = early ? '–' : String(place.position);
  $('waiting-line').textContent = String(place.line);
  $('waiting-note').textContent = early
    ? 'The sale has not opened yet. Everyone who joins before it opens gets a place drawn at random when it does, so there is no need to hurry.'
    : 'Keep this page open: your place is kept while it is, and the shop opens for you as soon as it is your turn.';
  const waitMs = place.eta_ms > 0 ? place.eta_ms - place.now_ms : 0;
  $('waiting-eta').textContent = place.eta_ms > 0 ? `About ${formatWait(waitMs)}` : 'Shortly';
  $('waiting-seed').textContent = commitment ? `Draw commitment (SHA-1 of the seed): ${commitment}` : '';
}

export function showWaitingNote(text) {
  $('waiting-note').textContent = text;
}

export function hideWaiting() {
  $('waiting').hidden = true;
}

export const isWaitingOpen = () => !$('waiting').hidden;

function formatWait(ms) {
  const secs = Math.max(1, Math.round(ms / 1000));
  if (secs < 60) return `${secs} s`;
  const mins = Math.round(secs / 60);
  return mins < 60 ? `${mins} min` : `${Math.round(mins / 60)} h`;
}
