// Progressive enhancement only: every page works without this file.
// Buttons with data-copy="<input id>" copy that input's value to the clipboard.
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
