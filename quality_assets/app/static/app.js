// "select page" ticks every item checkbox of the current grid page (bulk actions use them).
document.addEventListener("click", function (event) {
  if (event.target.id !== "select-page") return;
  var boxes = document.querySelectorAll("#grid input.pick");
  var all = Array.prototype.every.call(boxes, function (b) { return b.checked; });
  boxes.forEach(function (b) { b.checked = !all; });
});
