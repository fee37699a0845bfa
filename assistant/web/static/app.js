() => {
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.cite');
    if (!a) return;
    ev.preventDefault();
    const el = document.getElementById(a.dataset.src || (a.getAttribute('href') || '').slice(1));
    if (!el) return;
    const d = el.closest('details');
    if (d) d.open = true;
    el.scrollIntoView({behavior: 'smooth', block: 'center'});
    el.classList.add('flash');
    setTimeout(() => el.classList.remove('flash'), 1500);
  }, true);
  const setDir = () => document.querySelectorAll('#question textarea').forEach(t => t.setAttribute('dir', 'auto'));
  setDir();
  new MutationObserver(setDir).observe(document.body, {childList: true, subtree: true});
}
