"""Screenshot the page that `dvc plots show` writes, with headless Chromium and no CDN.

DVC's page loads vega, vega-lite and vega-embed from a CDN. This script renders the plots with
an HTML template that loads them from local files instead, opens the page in headless Chromium,
and saves a PNG cropped to the page's content. Run from the project root:

    python scripts/screenshot_plots.py --vega-dir /work/vendor/vega --output docs/plots.png

Any other arguments go to `dvc plots show` (e.g. plot ids or files to show only those).

Needs Chromium (Debian: `apt-get install chromium fonts-dejavu-core`) and a folder with the
UMD builds vega.min.js (vega 5), vega-lite.min.js (vega-lite 5) and vega-embed.min.js
(vega-embed 6), e.g. from `npm pack vega@5 vega-lite@5 vega-embed@6` (each in package/build/).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
VEGA_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
CHART_HEIGHT = 450  # px a 300 px vega chart takes with its axes, legend and margins
IMAGE_HEIGHT = 900  # px an image plot takes; too little is fine, the window grows until all fits
MAX_HEIGHT = 32768
MARGIN = 16  # px of white kept below the content
BACKGROUND = (255, 255, 255)

# dvc_render fills {plot_divs}; {scripts} is left out on purpose, as it holds the CDN tags.
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>DVC Plot</title>
{script_tags}
    <style>
        body {{ background: white; font-family: "DejaVu Sans", sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


class SetupError(Exception):
    """Something this script needs is missing; the message says how to get it."""


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other arguments are passed to `dvc plots show`.")
    parser.add_argument("--vega-dir", type=Path, required=True,
                        help=f"folder with {', '.join(VEGA_FILES)}")
    parser.add_argument("--output", type=Path, default=Path("docs/plots.png"), help="PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="browser window width in px")
    return parser.parse_known_args()


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise SetupError(f"no browser found ({', '.join(BROWSERS)}); "
                     "install one, e.g. `apt-get install chromium fonts-dejavu-core`")


def vega_scripts(vega_dir: Path) -> list[Path]:
    scripts = [vega_dir.resolve() / name for name in VEGA_FILES]
    if missing := [path.name for path in scripts if not path.is_file()]:
        raise SetupError(f"{vega_dir} lacks {', '.join(missing)}; get them with "
                         "`npm pack vega@5 vega-lite@5 vega-embed@6` (each tarball's package/build/)")
    return scripts


def write_template(path: Path, scripts: list[Path]) -> None:
    tags = "\n".join(f'    <script src="{script.as_uri()}"></script>' for script in scripts)
    path.write_text(TEMPLATE.format(script_tags=tags), encoding="utf8")


def render_page(template: Path, out_dir: Path, dvc_args: list[str]) -> Path:
    """Run `dvc plots show` with the template; returns the index.html it wrote."""
    command = [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template),
               "-o", str(out_dir), *dvc_args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out_dir / "index.html"


def estimate_height(page: Path) -> int:
    html = page.read_text(encoding="utf8")
    return 200 + CHART_HEIGHT * html.count("vegaEmbed(") + IMAGE_HEIGHT * html.count("<img")


def screenshot(browser: str, page: Path, png: Path, width: int, height: int) -> None:
    command = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               f"--window-size={width},{height}", "--virtual-time-budget=10000",
               f"--screenshot={png}", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{Path(browser).name} failed:\n{result.stderr}")


def content_bottom(png: Path) -> tuple[int, int]:
    """The row below the last non-background pixel, and the image's height."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, BACKGROUND)).getbbox()
    return (box[3] if box else 0), rgb.height


def capture(browser: str, page: Path, png: Path, width: int) -> None:
    """Screenshot with a window that grows until the page ends above its bottom, then crop."""
    height = estimate_height(page)
    while True:
        screenshot(browser, page, png, width, height)
        bottom, shot_height = content_bottom(png)
        if bottom + MARGIN < shot_height or height >= MAX_HEIGHT:
            break
        height = min(2 * height, MAX_HEIGHT)
    with Image.open(png) as image:
        cropped = image.crop((0, 0, image.width, min(bottom + MARGIN, image.height)))
    cropped.save(png)


def main() -> int:
    args, dvc_args = parse_args()
    try:
        browser = find_browser()
        scripts = vega_scripts(args.vega_dir)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dvc_plots_") as tmp:
        template = Path(tmp) / "template.html"
        write_template(template, scripts)
        try:
            page = render_page(template, Path(tmp) / "page", dvc_args)
            shot = Path(tmp) / "shot.png"
            capture(browser, page, shot, args.width)
        except (subprocess.CalledProcessError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
