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
    ("pages/recover.html", include_str!("../../../templates/pages/recover.html")),
    ("pages/account.html", include_str!("../../../templates/pages/account.html")),
    ("pages/admin/base.html", include_str!("../../../templates/pages/admin/base.html")),
    ("pages/admin/home.html", include_str!("../../../templates/pages/admin/home.html")),
    ("pages/admin/users.html", include_str!("../../../templates/pages/admin/users.html")),
    ("pages/admin/user.html", include_str!("../../../templates/pages/admin/user.html")),
    ("pages/admin/audit.html", include_str!("../../../templates/pages/admin/audit.html")),
    ("pages/admin/keys.html", include_str!("../../../templates/pages/admin/keys.html")),
    ("pages/admin/roles.html", include_str!("../../../templates/pages/admin/roles.html")),
    ("pages/admin/clients.html", include_str!("../../../templates/pages/admin/clients.html")),
    ("pages/admin/webhooks.html", include_str!("../../../templates/pages/admin/webhooks.html")),
];

/// The pages' only style, allowed by its hash in the CSP.
pub const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
label{display:block;margin-top:1rem;font-weight:600}\
input{display:block;width:100%;padding:.5rem;margin-top:.25rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}\
button:focus,input:focus,a:focus{outline:3px solid #1a56db;outline-offset:2px}\
.note{padding:.75rem;border:2px solid currentColor;margin-top:1rem}\
body.wide{max-width:72rem}nav a{margin-right:1rem}\
table{border-collapse:collapse;width:100%;margin-top:1rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #767676;vertical-align:top}\
.scroll{overflow-x:auto}textarea{display:block;width:100%;padding:.5rem;margin-top:.25rem;font-size:1rem;box-sizing:border-box}\
label input[type=checkbox]{display:inline;width:auto;margin-right:.5rem}select{display:block;padding:.5rem;margin-top:.25rem;font-size:1rem}\
form.inline{display:inline}form.inline button{margin-top:0;padding:.2rem .6rem}\
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

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

/// The passkey script, allowed by its hash in the CSP. On the login page it offers the passkey
/// (a button, and browser autofill where the browser has it) and posts the answer with the
/// form; on the recovery page it spends the link and enrols a passkey. Without WebAuthn it
/// shows nothing of either.
pub const PASSKEY_SCRIPT: &str = "(function(){var P=window.PublicKeyCredential;\
var ok=!!(P&&P.parseRequestOptionsFromJSON&&P.parseCreationOptionsFromJSON&&window.fetch);\
function post(u,b,t){var h={'Content-Type':'application/json'};if(t)h.Authorization='Bearer '+t;\
return fetch(u,{method:'POST',headers:h,body:JSON.stringify(b),credentials:'same-origin'}).then(function(r){\
if(!r.ok)throw new Error(String(r.status));return r.json()})}\
function show(i){var e=document.getElementById(i);if(e)e.hidden=false}\
function hide(i){var e=document.getElementById(i);if(e)e.hidden=true}\
var f=document.getElementById('passkey-form');\
if(f&&ok){var b=document.getElementById('passkey-button'),ctl=null;b.hidden=false;\
var start=function(cond){if(ctl)ctl.abort();var c=new AbortController();ctl=c;\
return post('/v1/auth/passkey',{}).then(function(r){\
var o={publicKey:P.parseRequestOptionsFromJSON(r.public_key),signal:c.signal};if(cond)o.mediation='conditional';\
return navigator.credentials.get(o).then(function(cr){f.elements.ceremony.value=r.ceremony;\
f.elements.credential.value=JSON.stringify(cr.toJSON());f.submit()})}).catch(function(e){\
if(!cond&&!(e&&e.name==='AbortError'))show('passkey-problem')})};\
b.addEventListener('click',function(){hide('passkey-problem');start(false)});\
if(P.isConditionalMediationAvailable)P.isConditionalMediationAvailable().then(function(y){if(y)start(true)})}\
var d=document.getElementById('recover');\
if(d&&ok){hide('recover-unsupported');var rb=document.getElementById('recover-button');rb.hidden=false;\
rb.addEventListener('click',function(){rb.disabled=true;hide('recover-failed');\
var fa=document.getElementById('factor');\
post('/v1/auth/recover/finish',{token:d.getAttribute('data-token'),factor:(fa&&fa.value.trim())||undefined}).then(function(e){var t=e.enrolment_token;\
return post('/v1/me/passkeys/register',{},t).then(function(r){\
return navigator.credentials.create({publicKey:P.parseCreationOptionsFromJSON(r.public_key)}).then(function(cr){\
return post('/v1/me/passkeys/register/finish',{ceremony:r.ceremony,credential:cr.toJSON()},t)})})}).then(\
function(){rb.hidden=true;show('recover-done')},function(){rb.disabled=false;show('recover-failed')})})}\
var s=document.getElementById('passkeys');\
if(s&&ok){var ab=document.getElementById('add-passkey'),k=s.getAttribute('data-csrf');ab.hidden=false;\
ab.addEventListener('click',function(){ab.disabled=true;hide('add-passkey-failed');\
post('/ui/account/passkey',{csrf:k}).then(function(r){\
return navigator.credentials.create({publicKey:P.parseCreationOptionsFromJSON(r.public_key)}).then(function(cr){\
return post('/ui/account/passkey/finish',{csrf:k,ceremony:r.ceremony,credential:cr.toJSON()})})}).then(\
function(x){var c=(x&&x.recovery_codes)||[];if(!c.length){location.assign('/ui/account?lang='+\
document.documentElement.lang+'&done=1');return}var u=document.getElementById('new-codes-list');\
c.forEach(function(v){var li=document.createElement('li');li.textContent=v;u.appendChild(li)});\
ab.hidden=true;show('add-passkey-done');show('new-codes')},\
function(){ab.disabled=false;show('add-passkey-failed')})})}})();";

/// The console's only script, allowed by its hash in the CSP: on the audit log's first page it
/// follows new events (server-sent events) and adds them on top, as text. Without EventSource
/// the page stays as it is, paged by links.
pub const CONSOLE_SCRIPT: &str = "(function(){var t=document.getElementById('audit-tail');\
if(!t||!window.EventSource)return;var b=document.querySelector('#events tbody');\
var s=new EventSource('/ui/admin/audit/stream?after='+encodeURIComponent(t.getAttribute('data-after')));\
s.addEventListener('audit',function(m){JSON.parse(m.data).forEach(function(e){var r=document.createElement('tr');\
['time','event','outcome','actor','user','ip'].forEach(function(k){var c=document.createElement('td');\
c.textContent=e[k]||'';r.appendChild(c)});b.insertBefore(r,b.firstChild)})});t.hidden=false})();";

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
        passkey_script => Value::from_safe_string(PASSKEY_SCRIPT.to_owned()),
        console_script => Value::from_safe_string(CONSOLE_SCRIPT.to_owned()),
    };
    PAGES.get_template(name)?.render(merge_maps([frame, page]))
}
