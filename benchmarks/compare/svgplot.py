# The bar plot both reports draw (report.py, report_tls.py): panels stacked one above another, each a row of groups
# of bars on one log-scale axis shared by all panels. python3 standard library only.
import math
from html import escape


class LogBars:
    def __init__(self, values, panels, groups, bars, panel_height, panel_gap, title, footer):
        vals = [v for v in values if v]
        self.lo = 10 ** math.floor(math.log10(min(vals))) if vals else 1
        self.hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 10
        if self.hi <= self.lo:
            self.hi = self.lo * 10
        self.W, self.PH, self.top, self.left, self.right = 960, panel_height, 70, 80, 20
        self.gap = panel_gap
        self.H = self.top + panels * (self.PH + self.gap) + 20
        self.gw = (self.W - self.left - self.right) / max(1, groups)
        self.bars = bars
        self.bw = min(28, self.gw * 0.75 / max(1, bars))
        W, H = self.W, self.H
        self.svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
                    f'<rect width="{W}" height="{H}" fill="white"/>',
                    f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16">{escape(title)}</text>',
                    f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" fill="#555">{escape(footer)}</text>']

    def legend(self, items):
        """items: (label, color), left to right under the title."""
        lx = self.left
        for label, color in items:
            self.svg.append(f'<rect x="{lx}" y="36" width="12" height="12" fill="{color}"/>')
            self.svg.append(f'<text x="{lx + 16}" y="46">{escape(label)}</text>')
            lx += 16 + 7.2 * len(label) + 20

    def y_of(self, v, y0):
        lo, hi = math.log10(self.lo), math.log10(self.hi)
        return y0 + self.PH - (math.log10(v) - lo) / (hi - lo) * self.PH

    def panel(self, index, title):
        """Starts panel index (from 0): its title and the grid, a line at each power of ten. Returns its top y."""
        y0 = self.top + index * (self.PH + self.gap) + 20
        self.svg.append(f'<text x="{self.left}" y="{y0 - 8}" font-weight="bold">{escape(title)}</text>')
        d = self.lo
        while d <= self.hi * 1.0001:
            y = self.y_of(d, y0)
            self.svg.append(f'<line x1="{self.left}" x2="{self.W - self.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            self.svg.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{d:,.0f}</text>')
            d *= 10
        return y0

    def bar(self, y0, group, index, value, color, tip):
        """Bar index (from 0) of group, up to value, with tip as its tooltip."""
        gx = self.left + group * self.gw + (self.gw - self.bw * self.bars) / 2
        y = self.y_of(value, y0)
        self.svg.append(f'<rect x="{gx + index * self.bw:.1f}" y="{y:.1f}" width="{self.bw - 2}" height="{y0 + self.PH - y:.1f}" '
                        f'fill="{color}"><title>{escape(tip)}</title></rect>')

    def label(self, y0, group, dy, text, fill=None):
        """A line of text centred under group, dy below the panel's axis."""
        colour = f' fill="{fill}"' if fill else ""
        self.svg.append(f'<text x="{self.left + group * self.gw + self.gw / 2:.1f}" y="{y0 + self.PH + dy}" '
                        f'text-anchor="middle"{colour}>{escape(text)}</text>')

    def axis(self, y0):
        """Ends a panel: the axis line under its bars."""
        self.svg.append(f'<line x1="{self.left}" x2="{self.W - self.right}" y1="{y0 + self.PH}" y2="{y0 + self.PH}" stroke="#333"/>')

    def write(self, path):
        open(path, "w").write("\n".join(self.svg + ["</svg>"]) + "\n")
