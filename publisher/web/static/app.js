// The dashboard: reads the JSON API of `navpub serve` and renders one fund at a time.
// Money arrives as exact decimal strings and is only re-formatted here (digit grouping,
// cut to cents), never parsed into floats — except to size chart geometry, which is drawing,
// not accounting.
"use strict";

const REFRESH_MS = 15000; // the keeper's fastest cadence is 900 s; 15 s keeps ages honest
const SYMBOLS = { USD: "$", ZAR: "R", EUR: "€", GBP: "£" };
const PALETTE = ["#2f6fde", "#20a386", "#f2a43a", "#d9534f", "#8a63d2", "#3bb3d6", "#7f8c8d", "#c0729c"];

const state = {
  currency: null,
  currencies: [],
  fundId: null,
  data: null, // last /api/funds answer
  gas: null,
  health: null,
  history: null,
  fetchedAt: 0, // Date.now() of the last answer: ages tick locally between refreshes
  charts: {},
};

const $ = (id) => document.getElementById(id);
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

// -- exact formatting ---------------------------------------------------------------------------

/** "1234567.891" → "1,234,567.89": groups digits and cuts (never rounds up) to `places`. */
function groupDecimal(text, places = 2) {
  let s = String(text);
  const negative = s.startsWith("-");
  if (negative) s = s.slice(1);
  let [whole, frac = ""] = s.split(".");
  frac = (frac + "0".repeat(places)).slice(0, places);
  whole = whole.replace(/^0+(?=\d)/, "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-" : "") + whole + (places > 0 ? "." + frac : "");
}

function symbol(code) {
  return SYMBOLS[code] || code + " ";
}

/** A Money in the display currency, or in USD when the rate is unavailable. */
function money(m, { places = 2 } = {}) {
  if (!m) return "—";
  const code = state.currency || "USD";
  if (m.display !== null && m.display !== undefined) return symbol(code) + groupDecimal(m.display, places);
  return "$" + groupDecimal(m.usd, places);
}

/** A per-share figure: in USD the exact amount cut (never padded from cents) to 4 places. */
function perShareMoney(m) {
  if (!m) return "—";
  if ((state.currency || "USD") === "USD") return "$" + groupDecimal(m.usd, 4);
  return money(m);
}

function usdExact(m) {
  return m ? `USD ${m.usd} (exact)` : "";
}

/** The number drawn for `m` in the current currency (chart geometry only). */
function chartNumber(m) {
  if (!m) return null; // no NAV per share (no shares yet): a gap in the line
  // A chart point is a picture, not money: the exact USD times the rate, so per-share values
  // keep their digits where the display string is cut to cents.
  const fx = state.data && state.data.fx;
  const rate = fx && fx.available && fx.rate ? Number(fx.rate) : 1;
  return Number(m.usd) * rate;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h ago`;
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function stamp(unix) {
  if (!unix) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function shortHash(h) {
  return h ? h.slice(0, 10) + "…" + h.slice(-6) : "—";
}

/** "feed:0x0165…Eb8F" for a source named by a 40-hex address; the full name is in the title. */
function shortSource(name) {
  return name.replace(/0x([0-9a-fA-F]{4})[0-9a-fA-F]{32}([0-9a-fA-F]{4})/g, "0x$1…$2");
}

function elapsedSinceFetch() {
  return state.fetchedAt ? (Date.now() - state.fetchedAt) / 1000 : 0;
}

// -- fetching -----------------------------------------------------------------------------------

async function getJson(path, { allow = [] } = {}) {
  const res = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok && !allow.includes(res.status)) {
    const detail = body && body.detail ? body.detail : `${res.status} ${res.statusText}`;
    throw new Error(`${path}: ${detail}`);
  }
  return body;
}

function q() {
  return `currency=${encodeURIComponent(state.currency)}`;
}

async function loadCurrencies() {
  const c = await getJson("api/currencies");
  state.currencies = c.currencies;
  const saved = localStorage.getItem("navpub.currency");
  state.currency = saved && c.currencies.includes(saved) ? saved : c.default;
  const select = $("currency");
  select.replaceChildren(
    ...c.currencies.map((code) => {
      const o = document.createElement("option");
      o.value = code;
      o.textContent = code;
      return o;
    }),
  );
  select.value = state.currency;
  select.addEventListener("change", () => {
    state.currency = select.value;
    localStorage.setItem("navpub.currency", state.currency);
    refresh();
  });
}

async function refresh() {
  try {
    const [data, gas, health] = await Promise.all([
      getJson(`api/funds?${q()}`),
      getJson("api/gas"),
      getJson("api/health", { allow: [503] }),
    ]);
    state.data = data;
    state.gas = gas;
    state.health = health;
    if (!data.funds.some((f) => f.fund_id === state.fundId)) {
      const fromHash = Number((location.hash.match(/^#fund-(\d+)$/) || [])[1]);
      state.fundId = data.funds.some((f) => f.fund_id === fromHash)
        ? fromHash
        : data.funds.length ? data.funds[0].fund_id : null;
    }
    state.history = state.fundId === null ? null : await getJson(`api/funds/${state.fundId}/history?${q()}`);
    state.fetchedAt = Date.now();
    $("api-error").hidden = true;
    render();
  } catch (err) {
    const banner = $("api-error");
    banner.textContent = `Cannot refresh: ${err.message}. Showing the last data received.`;
    banner.hidden = false;
  }
}

function selectFund(id) {
  state.fundId = id;
  history.replaceState(null, "", `#fund-${id}`);
  refresh();
}

// -- rendering ----------------------------------------------------------------------------------

function render() {
  const d = state.data;
  $("loading").hidden = true;
  renderHeader(d);
  renderTabs(d);
  const fund = d.funds.find((f) => f.fund_id === state.fundId);
  $("fund").hidden = !fund;
  if (!fund) {
    $("loading").hidden = false;
    $("loading").textContent = "This vault has no funds yet.";
    return;
  }
  renderFund(fund);
  tick();
}

function renderHeader(d) {
  $("chain-info").textContent = `chain ${d.chain_id} · block ${d.block_number.toLocaleString("en")} · ${stamp(d.block_timestamp)}`;
  const fx = d.fx;
  const el = $("fx-status");
  el.classList.toggle("fx-bad", !fx.available);
  if (fx.currency === "USD") el.textContent = "";
  else if (fx.available) {
    el.textContent = `1 USD = ${fx.rate} ${fx.currency} · ${ago(fx.age_s)}${fx.sources.length ? " · " + fx.sources.join(", ") : ""}`;
  } else {
    el.textContent = `${fx.reason}. Amounts shown in USD.`;
  }
  const k = state.health && state.health.keeper;
  const keeper = $("keeper");
  if (!k) keeper.textContent = state.health && !state.health.chain.ok ? "chain unreachable" : "";
  else if (k.alive) keeper.textContent = `keeper alive · last cycle ${ago(k.last_tick_age_s)}`;
  else keeper.textContent = k.last_tick_at ? `keeper not running (last cycle ${ago(k.last_tick_age_s)})` : "keeper not running";
  keeper.className = k && k.alive ? "ok" : "bad";
}

function renderTabs(d) {
  const nav = $("fund-tabs");
  nav.replaceChildren(
    ...d.funds.map((f) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tab" + (f.fund_id === state.fundId ? " active" : "");
      b.dataset.testid = `fund-tab-${f.fund_id}`;
      b.setAttribute("aria-pressed", String(f.fund_id === state.fundId));
      const flags = [];
      if (f.breaker_open) flags.push("breaker");
      if (f.held) flags.push("held");
      if (f.nav.estimated) flags.push("estimated");
      if (f.nav.stale) flags.push("stale");
      b.textContent = `#${f.fund_id} ${f.name || ""}`.trim();
      if (flags.length) {
        const s = document.createElement("span");
        s.className = "tab-flags";
        s.textContent = flags.join(" · ");
        b.append(s);
      }
      b.addEventListener("click", () => selectFund(f.fund_id));
      return b;
    }),
  );
}

function setBanner(testid, text) {
  const el = byTestId(testid);
  el.hidden = !text;
  el.textContent = text || "";
}

function renderFund(f) {
  $("fund-title").textContent = `Fund #${f.fund_id}${f.name ? " — " + f.name : ""}`;
  const dec = f.last_decision;
  $("fund-decision").textContent = dec ? `last cycle: ${dec.decision} (${stamp(dec.at)})` : "no cycle yet";
  $("fund-decision").title = dec ? dec.reason : "";

  setBanner("banner-breaker", f.breaker_open ? "Circuit breaker open: prices could not be trusted for too long; publishing is stopped until it closes or an operator resets it." : "");
  setBanner("banner-paused", f.nav.paused ? "The fund is paused on chain: NAV updates are refused." : "");
  setBanner("banner-held", f.held ? `NAV held for approval: ${money(f.held.nav)} — ${f.held.reason} (since ${stamp(f.held.since)}). Approve with: navpub approve --fund ${f.fund_id}` : "");
  setBanner("banner-estimated", f.nav.estimated ? "The published NAV is estimated: at least one asset was priced from the cache because its oracles failed." : "");
  setBanner("banner-failed", dec && dec.decision === "failed" ? `The last publish failed: ${dec.reason}` : "");

  const nav = f.nav;
  $("nav-value").textContent = nav.published ? money(nav.nav) : "not published";
  $("nav-value").title = usdExact(nav.nav);
  // The USD figure beside a converted one; when no rate is fresh the big figure is USD already.
  const converted = nav.published && state.currency !== "USD" && nav.nav.display !== null;
  $("nav-usd").textContent = converted ? `$${groupDecimal(nav.nav.usd)} USD` : "";
  $("nav-per-share").textContent = perShareMoney(nav.nav_per_share);
  $("nav-per-share").title = usdExact(nav.nav_per_share);
  const badges = [];
  if (nav.estimated) badges.push(["estimated", "badge-warn"]);
  if (nav.published) badges.push([`round ${nav.round}`, "badge"]);
  $("nav-badges").replaceChildren(
    ...badges.map(([t, c]) => {
      const s = document.createElement("span");
      s.className = c;
      s.textContent = t;
      return s;
    }),
  );

  const peak = f.peak;
  $("dd-pct").textContent = peak.drawdown_pct === null ? "—" : `${peak.drawdown_pct} %`;
  $("dd-abs").textContent = peak.drawdown ? `${perShareMoney(peak.drawdown)} a share below the peak` : "";
  $("hwm").textContent = perShareMoney(peak.high_water_mark);
  $("hwm").title = usdExact(peak.high_water_mark);
  byTestId("drawdown-card").classList.toggle("warn", peak.drawdown_pct !== null && peak.drawdown_pct !== "0.00");

  renderValuation(f.valuation);
  renderOracles(f.oracles);
  renderGas(f);
  renderDonut(f.valuation);
  renderHistory(state.history);
}

function renderValuation(v) {
  const set = (id, m) => {
    $(id).textContent = v ? money(m) : "—";
    $(id).title = v ? usdExact(m) : "";
  };
  set("net-collateral", v && v.net_collateral);
  set("gross-top", v && v.gross);
  set("collateral-top", v && v.collateral);
  set("liabilities-top", v && v.liabilities.total);
  $("valuation-meta").textContent = v
    ? `Computed ${stamp(v.computed_at)}${v.block_number ? " at block " + v.block_number.toLocaleString("en") : ""} · ${v.decision}${v.reason ? " — " + v.reason : ""}`
    : "No valuation computed yet.";
  const body = $("positions-body");
  body.replaceChildren(
    ...(v ? v.assets : []).map((a) => {
      const tr = document.createElement("tr");
      if (a.estimated) tr.className = "estimated";
      const cells = [
        `${a.asset}${a.venue !== "on-chain" ? " (" + a.venue + ")" : ""}${a.estimated ? " · cached" : ""}`,
        groupDecimal(a.amount, Math.min(6, (a.amount.split(".")[1] || "").length)),
        money(a.price, { places: 2 }),
        money(a.value),
        `${a.share_pct} %`,
        `${a.haircut}`,
        money(a.collateral),
        a.confidence === null ? "—" : `${a.confidence} %`,
        a.sources.map(shortSource).join(", "),
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i >= 1 && i <= 7) td.className = "num";
        if (i === 8) td.title = a.sources.join(", ");
        tr.append(td);
      });
      tr.dataset.testid = `position-${a.asset}`;
      return tr;
    }),
  );
  const foot = $("positions-foot");
  foot.replaceChildren();
  if (v) {
    const li = v.liabilities;
    const rows = [
      ["Gross assets", v.gross],
      ["Pending fees", li.pending_fees],
      ["Pending withdrawals", li.pending_withdrawals],
      ["Borrowed", li.borrowed],
      ["Borrowed off-exchange", li.offexchange_borrowed],
      ["Net asset value", v.nav],
    ];
    for (const [label, m] of rows) {
      if (label.startsWith("Borrowed off") && m.raw === "0") continue;
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.colSpan = 3;
      th.textContent = label;
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = label === "Gross assets" || label === "Net asset value" ? money(m) : `− ${money(m)}`;
      td.title = usdExact(m);
      const pad = document.createElement("td");
      pad.colSpan = 5;
      tr.append(th, td, pad);
      foot.append(tr);
    }
  }
  $("totals").textContent = "";
}

function renderOracles(oracles) {
  $("oracles-body").replaceChildren(
    ...oracles.map((o) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = `oracle-${o.asset}`;
      const stateText = !o.ok ? "failed" : o.estimated ? "cached" : "ok";
      tr.className = `oracle-${stateText}`;
      const each = o.sources
        .map((s) => `${shortSource(s.source)}: ${s.status}${s.price ? " " + groupDecimal(s.price, 4) : ""}${s.reason ? " (" + s.reason + ")" : ""}`)
        .join("; ");
      const cells = [
        o.asset,
        stateText + (o.error ? ` — ${o.error}` : ""),
        o.confidence === null ? "—" : `${o.confidence} %`,
        `${o.used} of ${o.configured}`,
        o.price ? groupDecimal(o.price, 4) : "—",
        each,
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 1) td.className = "state";
        if (i >= 2 && i <= 4) td.className = "num";
        if (i === 5) td.title = o.sources.map((x) => x.source).join(", ");
        tr.append(td);
      });
      return tr;
    }),
  );
}

function renderGas(f) {
  const g = state.gas;
  const p = g && g.projection;
  const mine = g && g.funds.find((x) => x.fund_id === f.fund_id);
  $("gas-month").textContent = p && p.monthly_cost_per_fund_usd ? `$${groupDecimal(p.monthly_cost_per_fund_usd.value)} / month` : "—";
  $("gas-month-note").textContent = p
    ? `projected per fund: ${p.updates_per_month} updates every ${duration(p.cadence_s)} × ${p.gas_per_update.toLocaleString("en")} gas (seed budget $${groupDecimal(p.seed_monthly_cost_per_fund_usd.value)})`
    : "";
  $("gas-spent").textContent = mine ? `${mine.gas.toLocaleString("en")} gas · $${groupDecimal(mine.cost_usd.value, 4)} · ${mine.updates} updates` : "nothing yet";
  $("gas-total").textContent = g ? `${g.gas.toLocaleString("en")} gas · $${groupDecimal(g.cost_usd.value, 4)} · ${g.transactions} tx` : "—";
  const tx = f.last_tx;
  $("last-tx").textContent = tx
    ? `${shortHash(tx.tx_hash)} · ${tx.fund_gas_used.toLocaleString("en")} of ${tx.gas_used.toLocaleString("en")} gas (${tx.funds_in_tx} fund${tx.funds_in_tx > 1 ? "s" : ""})`
    : "—";
  $("last-tx").title = tx ? tx.tx_hash : "";
}

function renderDonut(v) {
  const assets = v ? v.assets : [];
  $("aum-empty").hidden = assets.length > 0;
  const labels = assets.map((a) => a.asset + (a.venue !== "on-chain" ? ` (${a.venue})` : ""));
  const values = assets.map((a) => chartNumber(a.value));
  const colors = assets.map((_, i) => PALETTE[i % PALETTE.length]);
  $("aum-hint").textContent = v ? `gross ${money(v.gross)}` : "";
  $("donut-centre").textContent = v ? money(v.gross) : "";
  const chart = state.charts.donut;
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = values;
    chart.data.datasets[0].backgroundColor = colors;
    chart.update("none");
  } else {
    state.charts.donut = new Chart($("aum-donut"), {
      type: "doughnut",
      data: { labels, datasets: [{ data: values, backgroundColor: colors, borderWidth: 1 }] },
      options: {
        cutout: "62%",
        animation: false,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => `${ctx.label}: ${money(assets[ctx.dataIndex].value)}` } },
        },
      },
    });
  }
  state.charts.donutAssets = assets;
  if (state.charts.donut) {
    // Tooltips read the current slices, not the ones of the first render.
    state.charts.donut.options.plugins.tooltip.callbacks.label = (ctx) =>
      `${ctx.label}: ${money(state.charts.donutAssets[ctx.dataIndex].value)} (${state.charts.donutAssets[ctx.dataIndex].share_pct} %)`;
  }
  $("aum-legend").replaceChildren(
    ...assets.map((a, i) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colors[i];
      const text = document.createElement("span");
      text.textContent = `${labels[i]} · ${a.share_pct} % · ${money(a.value)}`;
      li.append(sw, text);
      return li;
    }),
  );
}

function renderHistory(h) {
  const points = h ? h.points : [];
  $("history-empty").hidden = points.length > 0;
  const labels = points.map((p) => stamp(p.as_of).replace(" UTC", ""));
  // Per share, like the mark: a deposit or a redemption moves the NAV, not NAV per share.
  const nav = points.map((p) => chartNumber(p.nav_per_share));
  const hwm = points.map((p) => chartNumber(p.high_water_mark));
  const chart = state.charts.history;
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = nav;
    chart.data.datasets[1].data = hwm;
    chart.update("none");
    return;
  }
  state.charts.history = new Chart($("nav-history"), {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "NAV per share", data: nav, borderColor: "#2f6fde", backgroundColor: "#2f6fde", pointRadius: 2, tension: 0 },
        { label: "High-water mark", data: hwm, borderColor: "#20a386", borderDash: [6, 4], pointRadius: 0, stepped: true },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 8 } },
        y: { ticks: { callback: (v) => (state.data.fx.available ? symbol(state.currency) : "$") + Number(v).toLocaleString("en") } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const p = state.history.points[ctx.dataIndex];
              const m = ctx.datasetIndex === 0 ? p.nav_per_share : p.high_water_mark;
              return `${ctx.dataset.label}: ${money(m)}${ctx.datasetIndex === 0 && p.estimated ? " (estimated)" : ""}`;
            },
          },
        },
      },
    },
  });
}

/** Ages move between refreshes: the API's age plus the time since that answer. */
function tick() {
  if (!state.data) return;
  const since = elapsedSinceFetch();
  $("last-refresh").textContent = `updated ${ago(since)} · every ${REFRESH_MS / 1000} s`;
  const f = state.data.funds.find((x) => x.fund_id === state.fundId);
  if (!f) return;
  const nav = f.nav;
  const age = nav.age_s === null ? null : nav.age_s + since;
  const stale = age === null || age > nav.stale_after_s;
  $("nav-age").textContent = nav.published ? `${ago(age)} (${stamp(nav.as_of)})` : "never";
  byTestId("nav-card").classList.toggle("stale", stale);
  const note = $("nav-stale");
  note.hidden = !stale;
  note.textContent = nav.published
    ? `Stale: older than the fund's ${duration(nav.stale_after_s)} heartbeat.`
    : "No NAV has been published for this fund yet.";
}

async function main() {
  try {
    await loadCurrencies();
  } catch (err) {
    $("loading").textContent = `Cannot reach the API: ${err.message}`;
    return;
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(tick, 1000);
}

main();
