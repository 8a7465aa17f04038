"""The jinja2 templates, style sheet and script of ``ltbench report``. They are Python strings, not
files, so that they ship in every install without package-data rules, and every page carries its
own copy of the style and script: a page opened alone, offline, still sorts and looks right."""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
nav { font-size: 0.9rem; margin-bottom: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f2f2f2; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(30rem, 1fr)); gap: 1rem; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
.muted { color: #666; font-size: 0.85rem; }
"""

# Click a header to sort by it, again to reverse. Cells sort by their data-sort value (numbers
# where every filled cell is one); empty cells go last either way.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (header, column) {
    header.addEventListener("click", function () {
      var descending = header.getAttribute("aria-sort") === "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var key = function (row) { var cell = row.cells[column]; return cell.getAttribute("data-sort") || cell.textContent.trim(); };
      var numeric = rows.every(function (row) { var k = key(row); return k === "" || !isNaN(Number(k)); });
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

BASE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ style|safe }}</style>
</head>
<body>
<nav>{% for label, href in crumbs %}<a href="{{ href }}">{{ label }}</a> / {% endfor %}{{ title }}</nav>
{% block content %}{% endblock %}
<p class="muted">Written by ltbench {{ version }} from the run records; regenerate with <code>ltbench report</code>.</p>
<script>{{ script|safe }}</script>
</body>
</html>
"""

INDEX = """{% extends "base.html" %}{% block content %}
<h1>ltbench report</h1>
<table class="sortable" id="datasets">
<thead><tr><th>Dataset</th><th class="num">Rows</th><th class="num">Runs</th><th>Best overall</th><th class="num">Overall</th></tr></thead>
<tbody>
{% for d in datasets %}<tr><td><a href="{{ d.href }}">{{ d.name }}</a></td><td class="num">{{ d.rows }}</td>
<td class="num">{{ d.runs }}</td><td>{{ d.best }}</td><td class="num" data-sort="{{ d.best_sort }}">{{ d.best_overall }}</td></tr>
{% endfor %}</tbody>
</table>
{% endblock %}
"""

DATASET = """{% extends "base.html" %}{% block content %}
<h1>{{ dataset }}</h1>
<p class="muted">{{ description }}</p>
<h2>Leaderboard</h2>
<p class="muted">Click a column header to sort. Mean &plusmn; sample std over seeds; 95% CI: within-class bootstrap of the
seeds' mean correctness ({{ resamples }} resamples, seed {{ seed }}), as <code>ltbench compare</code> computes it.</p>
<table class="sortable" id="leaderboard">
<thead><tr>{% for h in headers %}<th{% if h.num %} class="num"{% endif %}>{{ h.label }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for cell in row.cells %}<td{% if cell.num %} class="num"{% endif %} data-sort="{{ cell.sort }}">{{ cell.text }}</td>{% endfor %}
<td>{% for run in row.runs %}<a class="run-link" href="{{ run.href }}">seed {{ run.seed }}</a>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}</tbody>
</table>
<h2>Figures</h2>
<div class="figures">
{% for f in figures %}<figure id="figure-{{ f.kind }}">{% if f.src %}<img src="{{ f.src }}" alt="{{ f.alt }}">{% else %}<p class="muted">{{ f.alt }}: {{ f.missing }}</p>{% endif %}</figure>
{% endfor %}</div>
{% endblock %}
"""

RUN = """{% extends "base.html" %}{% block content %}
<h1>{{ record.method }} on {{ record.dataset }} (seed {{ record.seed }})</h1>
<p class="muted">Record <code>{{ record_file }}</code>, written {{ record.created }}.</p>
{% for section in sections %}<h2>{{ section.title }}</h2>
{% if section.pairs is defined %}<table class="pairs"><tbody>
{% for key, value in section.pairs %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</tbody></table>
{% else %}<pre>{{ section.text }}</pre>{% endif %}
{% endfor %}
<h2>Per-class accuracy</h2>
{% if class_csv %}<p class="muted">{{ record.class_counts|length }} classes, sorted by training images (most first) in
{{ class_bins|length }} bins of consecutive classes; every class is in <a href="{{ class_csv }}">{{ class_csv }}</a>.</p>
<table class="sortable" id="per-class-bins">
<thead><tr><th class="num">Ranks</th><th class="num">Classes</th><th class="num">Training images</th><th>Groups</th>
<th class="num">With test images</th><th class="num">Mean top-1 (%)</th><th class="num">Min</th><th class="num">Max</th></tr></thead>
<tbody>
{% for b in class_bins %}<tr><td class="num">{{ b.ranks }}</td><td class="num">{{ b.classes }}</td><td class="num">{{ b.images }}</td>
<td>{{ b.groups }}</td><td class="num">{{ b.measured }}</td><td class="num" data-sort="{{ b.sort }}">{{ b.mean }}</td>
<td class="num">{{ b.low }}</td><td class="num">{{ b.high }}</td></tr>
{% endfor %}</tbody>
</table>
{% else %}<table class="sortable" id="per-class">
{% set named = classes and classes[0].name is not none %}
<thead><tr><th class="num">Class</th>{% if named %}<th>Name</th>{% endif %}<th class="num">Training images</th><th>Group</th><th class="num">Top-1 (%)</th></tr></thead>
<tbody>
{% for c in classes %}<tr><td class="num" data-sort="{{ c.index }}">{{ c.index }}</td>{% if named %}<td>{{ c.name }}</td>{% endif %}<td class="num" data-sort="{{ c.count }}">{{ c.count }}</td>
<td>{{ c.group }}</td><td class="num" data-sort="{{ c.sort }}">{{ c.accuracy }}</td></tr>
{% endfor %}</tbody>
</table>{% endif %}
{% endblock %}
"""

TEMPLATES = {"base.html": BASE, "index.html": INDEX, "dataset.html": DATASET, "run.html": RUN}
