/* The sale picker: one button per sale of the shop, shown only when it runs more than one. */

import { isPicked, shopSales } from '../state.js';
import { $, el } from './dom.js';

export function renderSalePicker() {
  const { sales, now_ms: now } = shopSales();
  const picker = $('sale-picker');
  picker.hidden = sales.length < 2;
  if (picker.hidden) { picker.replaceChildren(); return; }
  picker.replaceChildren(...sales.map((sale) => {
    const picked = isPicked(sale);
    return el('button', {
      type: 'button', class: 'sale-option', 'data-sale': sale.sale, 'data-open': String(sale.open === true),
      'aria-pressed': String(picked),
    },
    el('span', { class: 'sale-option-title' }, String(sale.title || sale.sale)),
    el('span', { class: 'sale-option-state' }, saleState(sale, now)));
  }));
}

function saleState(sale, now) {
  if (sale.open) return 'Open now';
  const when = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  if (sale.start_ms > now) return `Opens ${when(sale.start_ms)}`;
  if (sale.end_ms && sale.end_ms <= now) return 'Ended';
  return 'Closed';
}
