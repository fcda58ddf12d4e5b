/* Loading the catalog: the sale's details and one page of products at a time. */

import * as api from './api.js';
import { handleError } from './errors.js';
import { noteSale } from './queue.js';
import { catalogPage, pickedSale, showCatalog, shopUrl } from './state.js';
import { renderGridMessage, showLoading } from './views/catalog.js';
import { showSale } from './views/header.js';

const PAGE_SIZE = 12;

let pageSeq = 0; // guards against an older page response overwriting a newer one

/** GET /sale is optional: absent or failing, the header stays plain. */
export async function loadSale() {
  const picked = pickedSale();
  let sale;
  try { sale = await api.getSale(picked); } catch { return; }
  if (picked !== pickedSale()) return; // the shopper moved on to another sale meanwhile
  if (sale && typeof sale === 'object') {
    noteSale(sale);
    showSale(sale);
  }
}

export async function loadPage(page) {
  const seq = ++pageSeq;
  showLoading();
  let data;
  try {
    data = await api.getProducts(pickedSale(), (page - 1) * PAGE_SIZE, PAGE_SIZE);
  } catch (err) {
    if (seq !== pageSeq) return;
    if (err.status === 401) { handleError(err); return; }
    renderGridMessage('We couldn’t load the products.', () => loadPage(page));
    return;
  }
  if (seq !== pageSeq) return; // a newer page request superseded this one
  const items = Array.isArray(data) ? data : (data && data.items) || [];
  const pages = data && (data.pages || (data.total != null ? Math.ceil(data.total / PAGE_SIZE) : 0));
  if (!items.length && page > 1) { loadPage(pages ? Math.min(pages, page - 1) : 1); return; } // stale ?page=
  // Without page metadata, a full page is the only hint that another one may follow.
  showCatalog(page, Math.max(1, pages || (items.length === PAGE_SIZE ? page + 1 : page)), items);
  history.replaceState(null, '', shopUrl(page));
}

export function goToPage(page) {
  const { page: current, pages } = catalogPage();
  if (page < 1 || page > pages || page === current) return;
  loadPage(page);
  window.scrollTo({ top: 0, behavior: 'smooth' });
}
