// MathJax settings for pymdownx.arithmatex (generic mode): \( \) inline, \[ \] display.
// MathJax itself is vendored in javascripts/mathjax/ (no CDN: the docs render offline).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  svg: { fontCache: "global" },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
document$.subscribe(() => {
  MathJax.typesetPromise();
});
