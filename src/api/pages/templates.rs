//! The pages' templates, built in beside the message templates. Every value is HTML-escaped on
//! output; the only value marked safe is the style, a constant of ours.

use std::sync::LazyLock;

use minijinja::{
    AutoEscape, Environment, UndefinedBehavior, context,
    syntax::SyntaxConfig,
    value::{Value, merge_maps},
};

use super::text;

/// Sources by name; `base.html` is the frame the others extend.
const SHIPPED: &[(&str, &str)] = &[
    ("pages/base.html", include_str!("../../../templates/pages/base.html")),
    ("pages/verify.html", include_str!("../../../templates/pages/verify.html")),
    ("pages/verified.html", include_str!("../../../templates/pages/verified.html")),
    ("pages/reset.html", include_str!("../../../templates/pages/reset.html")),
    ("pages/reset_done.html", include_str!("../../../templates/pages/reset_done.html")),
    ("pages/forgot.html", include_str!("../../../templates/pages/forgot.html")),
    ("pages/forgot_sent.html", include_str!("../../../templates/pages/forgot_sent.html")),
    ("pages/error.html", include_str!("../../../templates/pages/error.html")),
    ("pages/login.html", include_str!("../../../templates/pages/login.html")),
    ("pages/login_code.html", include_str!("../../../templates/pages/login_code.html")),
    ("pages/consent.html", include_str!("../../../templates/pages/consent.html")),
    ("pages/signed_in.html", include_str!("../../../templates/pages/signed_in.html")),
    ("pages/sign_out.html", include_str!("../../../templates/pages/sign_out.html")),
    ("pages/signed_out.html", include_str!("../../../templates/pages/signed_out.html")),
];

/// The pages' only style, allowed by its hash in the CSP.
pub const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
label{display:block;margin-top:1rem;font-weight:600}\
input{display:block;width:100%;padding:.5rem;margin-top:.25rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}\
button:focus,input:focus,a:focus{outline:3px solid #1a56db;outline-offset:2px}\
.note{padding:.75rem;border:2px solid currentColor;margin-top:1rem}";

/// The pages' only script: on the login form, when a proof of work is due, it finds the nonce
/// (SHA-256 of `<challenge>:<nonce>` with `difficulty` leading zero bits, as
/// `POST /v1/auth/challenge` describes) before the form goes. Allowed by its hash in the CSP.
pub const SCRIPT: &str = "(function(){var f=document.getElementById('login-form');\
if(!f||!f.elements.challenge||!window.crypto||!crypto.subtle)return;\
var d=+f.getAttribute('data-difficulty'),e=new TextEncoder();\
function zeros(h){var z=0;for(var i=0;i<h.length;i++){if(h[i]===0){z+=8;continue}\
var b=h[i];while(!(b&128)){z++;b<<=1}break}return z}\
f.addEventListener('submit',function(ev){if(f.elements.nonce.value)return;ev.preventDefault();\
var c=f.elements.challenge.value,n=0;(function next(){crypto.subtle.digest('SHA-256',e.encode(c+':'+n)).then(function(h){\
if(zeros(new Uint8Array(h))>=d){f.elements.nonce.value=String(n);f.submit()}else{n++;next()}})})()})})();";

/// Made at the first page served; each template compiles at its first use, so an idle server
/// holds none of them.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Escape whatever the file is called: every page is HTML.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A misspelt variable fails the render (and the tests), rather than printing nothing.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Block tags on lines of their own leave no blank lines behind. (Building fails only for
    // custom delimiters, which these are not.)
    if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
        env.set_syntax(syntax);
    }
    env.set_loader(|name| Ok(SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, src)| (*src).to_owned())));
    env
});

/// Renders page `name` in `lang` with the page's own values `page`; the frame's values
/// (`lang`, `t` the strings, `product`, `style`) are added here and win over the page's.
pub fn render(name: &str, lang: &str, product: &str, page: Value) -> Result<String, minijinja::Error> {
    let frame = context! {
        lang,
        product,
        t => text::of(lang).to_value(),
        style => Value::from_safe_string(STYLE.to_owned()),
        script => Value::from_safe_string(SCRIPT.to_owned()),
    };
    PAGES.get_template(name)?.render(merge_maps([frame, page]))
}
