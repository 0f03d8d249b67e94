// Progressive enhancement only: every page works without this file.
// Buttons with data-copy="<input id>" copy that input's value to the clipboard. They are rendered
// hidden (without this script they could do nothing; the link stays selectable in its box).
for (const button of document.querySelectorAll('[data-copy][hidden]')) button.hidden = false

document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]')
  if (!button) return
  event.preventDefault()
  const input = document.getElementById(button.dataset.copy)
  if (!input) return
  try {
    await navigator.clipboard.writeText(input.value)
  } catch {
    input.select()
    document.execCommand('copy')
  }
  const label = button.textContent
  button.textContent = 'Copied'
  setTimeout(() => {
    button.textContent = label
  }, 1500)
})

// The phone menu (a <details> in views/layout.eta) opens and closes without this script; with it,
// Escape or a click elsewhere closes it too.
const menu = document.querySelector('details.nav-menu')
if (menu) {
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && menu.open) {
      menu.open = false
      menu.querySelector('summary').focus()
    }
  })
  document.addEventListener('click', (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false
  })
}

// The new-rollout form (views/admin/index.eta): only the chosen app's scope fieldset is shown and
// submitted. Without this script every app's fieldset is shown and the server uses the chosen one.
const appChoice = document.querySelector('select[data-scope-sets]')
if (appChoice) {
  const showChosen = () => {
    for (const set of document.querySelectorAll('fieldset[data-app]')) {
      const chosen = set.dataset.app === appChoice.value
      set.hidden = !chosen
      set.disabled = !chosen
    }
  }
  appChoice.addEventListener('change', showChosen)
  showChosen()
}

// The audit trail shows times in the operator's time zone: tell the server the browser's zone
// (a cookie, not a secret) and show the page again once when it was using the setting instead.
const zoneNote = document.getElementById('time-zone')
if (zoneNote) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
  if (zone && !document.cookie.split('; ').includes(`sl_tz=${encodeURIComponent(zone)}`)) {
    // biome-ignore lint/suspicious/noDocumentCookie: one plain preference value; the Cookie Store API is not in every browser
    document.cookie = `sl_tz=${encodeURIComponent(zone)}; path=/admin; SameSite=Lax; max-age=31536000`
    if (zoneNote.dataset.tzSource === 'setting') location.reload()
  }
}
