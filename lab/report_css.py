"""The HTML report's stylesheet: system fonts only, responsive, no horizontal page scroll."""

CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0 auto;padding:1rem;max-width:1400px;color:#1b1b1b;background:#fafafa;
 overflow-wrap:anywhere}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:0 0 .3rem}
h3{font-size:1rem;margin:.2rem 0}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.85em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f1f1f1;padding:.6rem;
 border-radius:6px;margin:.4rem 0}
.scroll{overflow-x:auto;max-width:100%}
table.overview{border-collapse:collapse;margin:.6rem 0}
table.overview td,table.overview th{padding:.25rem .5rem;border-bottom:1px solid #ddd;
 text-align:left}
.legend{display:flex;flex-wrap:wrap;gap:.4rem;margin:.5rem 0;padding:0;list-style:none}
.legend li{padding:.1rem .5rem;border-radius:4px;font-size:.85rem}
section.scenario{background:#fff;border:1px solid #ddd;border-radius:10px;padding:.8rem;
 margin:1.2rem 0}
.refs{display:flex;flex-wrap:wrap;gap:.3rem;padding:0;margin:.3rem 0;list-style:none}
.refs li{background:#eef2f8;border-radius:4px;padding:0 .4rem;font-size:.85rem}
.refs a{color:#234}
.story{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr));
 gap:.6rem;margin:.5rem 0}
.story>div{background:#f6f7f9;border-radius:8px;padding:.5rem .7rem}
.story .attacker{border-left:4px solid #c2410c}.story .compliant{border-left:4px solid #15803d}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr));
 gap:.8rem;margin:.6rem 0}
article.phase{border:1px solid #ddd;border-radius:8px;min-width:0;background:#fff}
.verdict{padding:.5rem .7rem;border-radius:8px 8px 0 0;color:#fff;max-width:100%;
 overflow-wrap:anywhere}
.verdict .label{font-weight:700;font-size:1.05rem;letter-spacing:.02em}
.verdict p{margin:.15rem 0}
.phase .body{padding:.5rem .7rem}
.v-pass,.lg-pass{background:#15803d;color:#fff}
.v-fail,.v-alarm,.lg-alarm{background:#b91c1c;color:#fff}
.v-known-failure,.lg-known{background:#9a3412;color:#fff}
.v-known-failure.v-alarm{background:#b91c1c}
.v-unexpected-pass,.v-advisory,.lg-adv{background:#a16207;color:#fff}
.v-inconclusive,.v-error{background:#6b21a8;color:#fff}
.v-skipped,.v-not-exercised,.lg-skip{background:#525252;color:#fff}
td.v-pass,td.v-fail,td.v-known-failure,td.v-unexpected-pass,td.v-inconclusive,td.v-error,
td.v-skipped,td.v-advisory,td.v-not-exercised{font-weight:600}
td a{color:inherit}
.attack-list{margin:.3rem 0;padding-left:1.1rem}
figure{margin:.5rem 0;overflow-x:auto}
svg.seq{width:100%;min-width:34rem;max-width:52rem;height:auto;display:block;margin:0 auto;
 background:#fff}
svg.seq text{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11px;
 fill:#222}
.seq-lane line{stroke:#9ca3af;stroke-dasharray:4 3}
.seq-lane rect{fill:#e5e7eb;stroke:#6b7280}.seq-side rect{fill:#f3f4f6;stroke-dasharray:3 2}
.seq-lane text{font-weight:700}
.seq-arrow line{stroke:#555;stroke-width:1.4}.seq-arrow polygon{fill:#555}
.seq-arrow.m-tls line{stroke:#15803d;stroke-width:2}.seq-arrow.m-tls polygon{fill:#15803d}
.seq-arrow.m-attack line{stroke:#c2410c;stroke-width:2.4}
.seq-arrow.m-attack polygon{fill:#c2410c}
.seq-arrow.m-alarm line{stroke:#b91c1c;stroke-width:2.4;stroke-dasharray:6 3}
.seq-arrow.m-alarm polygon{fill:#b91c1c}
.seq-via{fill:#fff;stroke:#555}
.seq-note rect{fill:#f3f4f6;stroke:#9ca3af}
.seq-note.m-attack rect{fill:#ffedd5;stroke:#c2410c;stroke-width:1.5}
.seq-note.m-alarm rect{fill:#fee2e2;stroke:#b91c1c;stroke-width:2}
.seq-note.m-good rect{fill:#dcfce7;stroke:#15803d}
.seq-note.m-tls rect{fill:#ecfdf5;stroke:#15803d;stroke-dasharray:3 2}
svg.seq .p-struck{text-decoration:line-through;fill:#b91c1c;font-weight:700}
svg.seq .p-added,svg.seq .p-forged{fill:#b91c1c;font-weight:700}
svg.seq .p-badge{fill:#c2410c;font-style:italic}
svg.seq .seq-more{fill:#555;font-style:italic}
details{margin:.4rem 0}summary{cursor:pointer}
@media (max-width:640px){body{padding:.5rem;font-size:14px}
 section.scenario{padding:.5rem}.phase .body{padding:.4rem}}
"""
