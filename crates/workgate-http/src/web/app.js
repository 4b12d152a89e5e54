// Resend countdown: the button is enabled once the server's cooldown has passed. Without
// JavaScript the button stays usable and the server answers "please wait" until then.
document.querySelectorAll("[data-enable-after]").forEach(function (button) {
  var left = parseInt(button.getAttribute("data-enable-after"), 10) || 0;
  var note = document.querySelector("[data-countdown] .count");
  if (left <= 0) return;
  button.disabled = true;
  var timer = setInterval(function () {
    left -= 1;
    if (note) note.textContent = String(Math.max(left, 0));
    if (left <= 0) { button.disabled = false; clearInterval(timer); }
  }, 1000);
});

// Bulk import: say that the upload is under way (large files take a while).
document.querySelectorAll("form#import").forEach(function (form) {
  form.addEventListener("submit", function () {
    var button = form.querySelector("button[data-busy]");
    if (button) { button.textContent = button.getAttribute("data-busy"); button.disabled = true; }
  });
});
