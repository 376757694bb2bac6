// The web form, improved where JavaScript runs (it works without): the neighbourhood list
// narrows to the chosen district, choosing a neighbourhood fills in its district, and a
// photo over the size limit is flagged before it is sent.
(function () {
  "use strict";
  var district = document.getElementById("id_district");
  var place = document.getElementById("id_neighbourhood");
  if (district && place) {
    var groups = Array.prototype.slice.call(place.querySelectorAll("optgroup"));
    var narrow = function () {
      var chosen = district.value;
      var keep = place.value;
      groups.forEach(function (group) {
        if (group.parentNode) { place.removeChild(group); }
      });
      groups.forEach(function (group) {
        if (!chosen || group.label === chosen) { place.appendChild(group); }
      });
      place.value = keep;
      if (place.value !== keep) { place.value = ""; }
    };
    district.addEventListener("change", narrow);
    place.addEventListener("change", function () {
      var option = place.options[place.selectedIndex];
      var group = option && option.parentNode;
      if (group && group.tagName === "OPTGROUP" && district.value !== group.label) {
        district.value = group.label;
        narrow();
      }
    });
    narrow();
  }
  var photo = document.getElementById("id_photo");
  var box = photo && photo.closest("[data-max-bytes]");
  if (photo && box) {
    var limit = parseInt(box.getAttribute("data-max-bytes"), 10);
    var message = box.getAttribute("data-too-large");
    photo.addEventListener("change", function () {
      var file = photo.files && photo.files[0];
      photo.setCustomValidity(file && file.size > limit ? message : "");
      photo.reportValidity();
    });
  }
})();
