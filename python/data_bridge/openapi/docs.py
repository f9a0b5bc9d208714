"""The interactive documentation pages: Swagger UI (``/docs``) and ReDoc (``/redoc``).

Both pages load their scripts and styles from the same server, never from a CDN, so
they work without internet access. The assets are the distribution builds shipped by
the ``openapi-ui-bundles`` package (Swagger UI 5, Apache-2.0; ReDoc 2, MIT), served
from its directories by Rust as static files, with ETags and conditional requests.
"""

from __future__ import annotations

import html
import json
import pathlib

__all__ = [
    "ASSETS",
    "oauth2_redirect_html",
    "redoc_dir",
    "redoc_html",
    "swagger_ui_dir",
    "swagger_ui_html",
]

# Where the assets are served, below the page's own URL (``/docs/assets/...``).
ASSETS = "assets"


def swagger_ui_dir() -> pathlib.Path:
    """The directory holding ``swagger-ui-bundle.js`` and ``swagger-ui.css``."""
    from openapi_ui_bundles import swagger_ui

    return pathlib.Path(swagger_ui.static_path)


def redoc_dir() -> pathlib.Path:
    """The directory holding ``redoc.standalone.js``."""
    from openapi_ui_bundles import redoc

    return pathlib.Path(redoc.static_path)


def _script_json(value: object) -> str:
    # JSON placed inside <script>: no "</script>" or comment opener can end it early.
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def swagger_ui_html(
    *, title: str, openapi_url: str, assets: str, oauth2_redirect_url: str | None
) -> str:
    """The Swagger UI page for the document at ``openapi_url``; ``assets`` is the URL
    the Swagger UI files are served under."""
    config: dict[str, object] = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
    }
    redirect = ""
    if oauth2_redirect_url:
        redirect = f"config.oauth2RedirectUrl = window.location.origin + {_script_json(oauth2_redirect_url)};"
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{html.escape(assets)}/swagger-ui.css">
<link rel="icon" type="image/png" href="{html.escape(assets)}/favicon-32x32.png">
<title>{html.escape(title)} - Swagger UI</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{html.escape(assets)}/swagger-ui-bundle.js"></script>
<script>
const config = {_script_json(config)};
{redirect}
config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
const ui = SwaggerUIBundle(config);
</script>
</body>
</html>
"""


def redoc_html(*, title: str, openapi_url: str, assets: str) -> str:
    """The ReDoc page for the document at ``openapi_url``; ``assets`` is the URL the
    ReDoc script is served under."""
    return f"""<!DOCTYPE html>
<html>
<head>
<title>{html.escape(title)} - ReDoc</title>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ margin: 0; padding: 0; }}
</style>
</head>
<body>
<noscript>ReDoc requires JavaScript to show the documentation.</noscript>
<redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{html.escape(assets)}/redoc.standalone.js"></script>
</body>
</html>
"""


# Swagger UI opens this page as the OAuth2 redirect target: it hands the parameters the
# authorization server sent (in the fragment or the query) back to the opener's
# ``swaggerUIRedirectOauth2`` and closes itself.
_OAUTH2_REDIRECT = """<!DOCTYPE html>
<html lang="en-US">
<head>
<title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script>
"use strict";
function readParams() {
  const raw = /code|token|error/.test(window.location.hash)
    ? window.location.hash.substring(1).replace("?", "&")
    : window.location.search.substring(1);
  const params = {};
  for (const [key, value] of new URLSearchParams(raw)) {
    params[key] = value;
  }
  return params;
}
function run() {
  const oauth2 = window.opener.swaggerUIRedirectOauth2;
  const params = readParams();
  const isValid = params.state === oauth2.state;
  const flow = oauth2.auth.schema.get("flow");
  const codeFlow = ["accessCode", "authorizationCode", "authorization_code"].includes(flow);
  if (codeFlow && !oauth2.auth.code) {
    if (!isValid) {
      oauth2.errCb({
        authId: oauth2.auth.name,
        source: "auth",
        level: "warning",
        message: "Authorization may be unsafe: the state sent was not returned by the authorization server."
      });
    }
    if (params.code) {
      delete oauth2.state;
      oauth2.auth.code = params.code;
      oauth2.callback({auth: oauth2.auth, redirectUrl: oauth2.redirectUrl});
    } else {
      let message = "[Authorization failed]: no accessCode received from the server.";
      if (params.error) {
        message = "[" + params.error + "]: " +
          (params.error_description ? params.error_description + ". " : "no accessCode received from the server. ") +
          (params.error_uri ? "More info: " + params.error_uri : "");
      }
      oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "error", message: message});
    }
  } else {
    oauth2.callback({auth: oauth2.auth, token: params, isValid: isValid, redirectUrl: oauth2.redirectUrl});
  }
  window.close();
}
if (document.readyState !== "loading") {
  run();
} else {
  document.addEventListener("DOMContentLoaded", run);
}
</script>
</body>
</html>
"""


def oauth2_redirect_html() -> str:
    """The page Swagger UI's OAuth2 flows redirect to."""
    return _OAUTH2_REDIRECT
