/* The catalog: the product grid (skeleton, cards, messages), each card's stock badge and add
   button, and the pagination. */

import { $, el, formatMoney, hueFor, initials, replay, announce } from './dom.js';
import { catalogPage, coolingDown, stockOf } from '../state.js';

const LOW_STOCK = 5;

/** Marks the grid busy; placeholders only if no cards are there yet to keep showing. */
export function showLoading() {
  const grid = $('grid');
  grid.setAttribute('aria-busy', 'true');
  if (!grid.querySelector('.card')) renderSkeleton();
}

export function renderSkeleton() {
  const card = () => el('div', { class: 'card skeleton', 'aria-hidden': 'true' },
    el('div', { class: 'card-art' }),
    el('div', { class: 'card-body' }, el('div', { class: 'bar' }), el('div', { class: 'bar short' })));
  $('grid').replaceChildren(...Array.from({ length: 8 }, card));
}

/** A message in place of the grid, with a "Try again" button if retry is given. */
export function renderGridMessage(text, retry) {
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

/** The grid and the pagination of the page in state. */
export function renderCatalog() {
  renderGrid();
  renderPagination();
}

function renderGrid() {
  const { products } = catalogPage();
  const grid = $('grid');
  grid.setAttribute('aria-busy', 'false');
  if (!products.length) { renderGridMessage('Nothing on sale yet. Check back soon.'); return; }
  grid.replaceChildren(...products.map(productCard));
  paintAllStock();
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

/** Every card's badge and button again (a cooldown started or passed). */
export function paintAllStock() {
  for (const p of catalogPage().products) paintStock(p.id);
}

/** Draws the stock badge and the add button of one card from the state's stock. */
function paintStock(id) {
  const badge = $(`stock-${Number(id)}`);
  if (!badge) return; // not on the current page
  const card = badge.closest('.card');
  const button = card.querySelector('.add');
  const n = stockOf(id);
  const known = Number.isFinite(n);
  badge.textContent = !known ? '…' : n <= 0 ? 'Sold out' : `${n} left`;
  badge.classList.toggle('low', known && n > 0 && n < LOW_STOCK);
  badge.classList.toggle('out', known && n <= 0);
  card.classList.toggle('soldout', known && n <= 0);
  button.disabled = (known && n <= 0) || coolingDown();
  button.textContent = known && n <= 0 ? 'Sold out' : 'Add to cart';
}

/** One product's stock changed: its card is redrawn and flashes. */
export function stockChanged({ id, before, available }) {
  paintStock(id);
  const badge = $(`stock-${id}`);
  if (!badge) return;
  if (before !== undefined) replay(badge, 'flash');
  // Announce only the change that matters to a screen-reader user, not every tick.
  if (before > 0 && available <= 0) {
    const product = catalogPage().products.find((p) => Number(p.id) === id);
    announce(`${product ? product.name : 'A product'} is sold out`);
  }
}

function renderPagination() {
  const nav = $('pagination');
  const { page, pages } = catalogPage();
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
