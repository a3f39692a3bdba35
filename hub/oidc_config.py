"""Example: firms' single sign-on through an OpenID Connect identity provider.

Start the hub with it instead of the password accounts:

    export SMARTFAB_OIDC_CLIENT_ID=smartfab SMARTFAB_OIDC_CLIENT_SECRET=...
    export SMARTFAB_OIDC_AUTHORIZE_URL=https://idp.example/auth
    export SMARTFAB_OIDC_TOKEN_URL=https://idp.example/token
    export SMARTFAB_OIDC_USERINFO_URL=https://idp.example/userinfo
    export SMARTFAB_OIDC_CALLBACK_URL=https://hub.example/hub/oauth_callback
    smartfab hub up --hub-config hub/oidc_config.py

Only people of the alliance file may log in (their identity-provider user name, the
``preferred_username`` claim, must be their name there); teams and roles still come from the
alliance file. Requires ``pip install smartfab[oidc]``.
"""

from smartfab.alliance import load_alliance
from smartfab.host.settings import load_settings
from smartfab.hub.config import configure_hub
from smartfab.hub.oidc import OIDCSettings, set_oidc

c = get_config()  # noqa: F821  (provided by JupyterHub)
configure_hub(c)
set_oidc(c, OIDCSettings.from_env(), load_alliance(load_settings().alliance_file))
