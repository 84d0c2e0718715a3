//! A software passkey: answers the server's WebAuthn options with what a browser's
//! `PublicKeyCredential.toJSON()` gives (attestation "none", ES256, resident credentials), with
//! knobs for the flags, the sign counter and tampering.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64U};
use ring::{
    digest::{SHA256, digest},
    rand::{SecureRandom as _, SystemRandom},
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _},
};
use serde_json::{Value, json};

/// DER prefix of a P-256 SubjectPublicKeyInfo, for the response's `publicKey` (browsers send it).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

pub struct Authenticator {
    pub origin: String,
    pub rp_id: String,
    pub uv: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// 0 keeps the counter still, as synced passkeys do.
    pub counter_step: u32,
    creds: Vec<Credential>,
}

pub struct Credential {
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    pub counter: u32,
    key: EcdsaKeyPair,
    // EcdsaKeyPair is not Clone; the document lets a device be copied.
    pkcs8: Vec<u8>,
}

impl Clone for Credential {
    fn clone(&self) -> Self {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8, &SystemRandom::new())
            .expect("a key this file made");
        Credential {
            id: self.id.clone(),
            user_handle: self.user_handle.clone(),
            rp_id: self.rp_id.clone(),
            counter: self.counter,
            key,
            pkcs8: self.pkcs8.clone(),
        }
    }
}

/// The options object, whether bare or as `{"publicKey": {...}}` (CredentialCreationOptions).
fn public_key(options: &Value) -> &Value {
    options.get("publicKey").unwrap_or(options)
}

fn unb64(s: &str) -> Result<Vec<u8>, String> {
    B64U.decode(s.trim_end_matches('=')).map_err(|e| format!("bad base64url {s:?}: {e}"))
}

fn auth_data(rp_id: &str, flags: u8, counter: u32) -> Vec<u8> {
    [digest(&SHA256, rp_id.as_bytes()).as_ref(), &[flags][..], &counter.to_be_bytes()[..]].concat()
}

/// The PublicKeyCredential around a response, as `toJSON()` lays it out.
fn credential_json(id: &[u8], extensions: Value, response: Value) -> Value {
    let id = B64U.encode(id);
    json!({"id": id, "rawId": id, "type": "public-key", "authenticatorAttachment": "platform",
        "clientExtensionResults": extensions, "response": response})
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    // Written by hand so the members come in a browser's order.
    let (kind, challenge, origin) = (json!(kind), json!(challenge), json!(origin));
    format!(r#"{{"type":{kind},"challenge":{challenge},"origin":{origin},"crossOrigin":false}}"#).into_bytes()
}

impl Authenticator {
    pub fn new(origin: &str) -> Self {
        let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        let host = rest.split(['/', ':', '?', '#']).next().unwrap_or_default();
        Authenticator {
            origin: origin.to_owned(),
            rp_id: host.to_owned(),
            uv: true,
            backup_eligible: false,
            backed_up: false,
            counter_step: 1,
            creds: Vec::new(),
        }
    }

    pub fn credentials(&self) -> &[Credential] {
        &self.creds
    }

    pub fn set_counter(&mut self, which: usize, counter: u32) {
        self.creds[which].counter = counter;
    }

    /// The same device settings holding only a copy of credential `which`.
    pub fn clone_credential(&self, which: usize) -> Authenticator {
        Authenticator {
            origin: self.origin.clone(),
            rp_id: self.rp_id.clone(),
            creds: vec![self.creds[which].clone()],
            ..*self
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let bits =
            [(true, 0x01), (self.uv, 0x04), (self.backup_eligible, 0x08), (self.backed_up, 0x10), (attested, 0x40)];
        bits.into_iter().filter(|(on, _)| *on).fold(0, |flags, (_, bit)| flags | bit)
    }

    pub fn create(&mut self, options: &Value) -> Result<Value, String> {
        self.create_with(options, None, None)
    }

    pub fn create_with(
        &mut self,
        options: &Value,
        origin: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<Value, String> {
        let pk = public_key(options);
        let rp_id = pk["rp"]["id"].as_str().unwrap_or(&self.rp_id).to_owned();
        let challenge = match challenge {
            Some(c) => c,
            None => pk["challenge"].as_str().ok_or("options without a challenge")?,
        };
        let user_handle = unb64(pk["user"]["id"].as_str().ok_or("options without user.id")?)?;
        for excluded in pk["excludeCredentials"].as_array().into_iter().flatten() {
            let id = unb64(excluded["id"].as_str().ok_or("excludeCredentials entry without id")?)?;
            if self.creds.iter().any(|c| c.rp_id == rp_id && c.id == id) {
                return Err("InvalidStateError: the authenticator already holds an excluded credential".into());
            }
        }

        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|e| e.to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| e.to_string())?;
        let mut id = vec![0; 16];
        rng.fill(&mut id).map_err(|e| e.to_string())?;
        let point = key.public_key().as_ref().to_vec();

        let mut auth_data = auth_data(&rp_id, self.flags(true), 0);
        auth_data.extend([0u8; 16]); // AAGUID: zeros, as "none" attestation allows
        auth_data.extend(u16::try_from(id.len()).map_err(|e| e.to_string())?.to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(cose_es256(&point));

        let mut att = Vec::new();
        cbor::map(&mut att, 3);
        cbor::text(&mut att, "fmt");
        cbor::text(&mut att, "none");
        cbor::text(&mut att, "attStmt");
        cbor::map(&mut att, 0);
        cbor::text(&mut att, "authData");
        cbor::bytes(&mut att, &auth_data);

        let client_data = client_data("webauthn.create", challenge, origin.unwrap_or(&self.origin));
        // A browser answers credProps itself; the authenticator stores every credential as resident.
        let mut extensions = json!({});
        if pk["extensions"]["credProps"] == json!(true) {
            extensions["credProps"] = json!({"rk": true});
        }
        let response = json!({
            "clientDataJSON": B64U.encode(client_data), "attestationObject": B64U.encode(att),
            "transports": ["internal"], "publicKeyAlgorithm": -7,
            "publicKey": B64U.encode([&P256_SPKI_PREFIX[..], &point[..]].concat()),
            "authenticatorData": B64U.encode(&auth_data),
        });
        let json = credential_json(&id, extensions, response);
        self.creds.push(Credential { id, user_handle, rp_id, counter: 0, key, pkcs8: pkcs8.as_ref().to_vec() });
        Ok(json)
    }

    pub fn get(&mut self, options: &Value, which: usize) -> Value {
        self.get_with(options, which, None, None, None)
    }

    /// Uses the `which`th credential this device holds for the options' RP, as a discoverable
    /// login lets the user pick; allowCredentials is not consulted.
    pub fn get_with(
        &mut self,
        options: &Value,
        which: usize,
        origin: Option<&str>,
        challenge: Option<&str>,
        user_handle: Option<Vec<u8>>,
    ) -> Value {
        let pk = public_key(options);
        let rp_id = pk["rpId"].as_str().unwrap_or(&self.rp_id).to_owned();
        let challenge = challenge.or(pk["challenge"].as_str()).expect("options without a challenge");
        let client_data = client_data("webauthn.get", challenge, origin.unwrap_or(&self.origin));
        let (flags, step) = (self.flags(false), self.counter_step);
        let cred = self.creds.iter_mut().filter(|c| c.rp_id == rp_id).nth(which);
        let cred = cred.unwrap_or_else(|| panic!("no credential #{which} for {rp_id}"));
        cred.counter = cred.counter.wrapping_add(step);
        let auth_data = auth_data(&rp_id, flags, cred.counter);
        let signed = [&auth_data[..], digest(&SHA256, &client_data).as_ref()].concat();
        let signature = cred.key.sign(&SystemRandom::new(), &signed).expect("ECDSA signing");
        let response = json!({
            "clientDataJSON": B64U.encode(&client_data), "authenticatorData": B64U.encode(&auth_data),
            "signature": B64U.encode(signature.as_ref()),
            "userHandle": B64U.encode(user_handle.as_deref().unwrap_or(&cred.user_handle)),
        });
        credential_json(&cred.id, json!({}), response)
    }
}

/// COSE_Key for ES256 from an uncompressed point 0x04 || x || y.
fn cose_es256(point: &[u8]) -> Vec<u8> {
    let (x, y) = point[1..].split_at(32);
    let mut out = Vec::new();
    cbor::map(&mut out, 5);
    for (k, v) in [(1, 2), (3, -7), (-1, 1)] {
        cbor::int(&mut out, k);
        cbor::int(&mut out, v);
    }
    cbor::int(&mut out, -2);
    cbor::bytes(&mut out, x);
    cbor::int(&mut out, -3);
    cbor::bytes(&mut out, y);
    out
}

/// Just enough CBOR (RFC 8949, definite lengths) to write what an authenticator sends.
mod cbor {
    pub fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        // The argument goes in the low 5 bits when small, else in the fewest big-endian bytes.
        let (info, len) = match n {
            0..=23 => (n as u8, 0),
            24..=0xff => (24, 1),
            0x100..=0xffff => (25, 2),
            0x1_0000..=0xffff_ffff => (26, 4),
            _ => (27, 8),
        };
        out.push((major << 5) | info);
        out.extend_from_slice(&n.to_be_bytes()[8 - len..]);
    }

    pub fn int(out: &mut Vec<u8>, v: i64) {
        match u64::try_from(v) {
            Ok(n) => head(out, 0, n),
            // -1 - v cannot overflow for any negative i64.
            Err(_) => head(out, 1, (-1 - v) as u64),
        }
    }

    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
    }

    pub fn text(out: &mut Vec<u8>, s: &str) {
        head(out, 3, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    #[allow(dead_code)]
    pub fn array(out: &mut Vec<u8>, len: u64) {
        head(out, 4, len);
    }

    pub fn map(out: &mut Vec<u8>, len: u64) {
        head(out, 5, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn cbor_heads() {
        let int = |v| enc(|o| cbor::int(o, v));
        assert_eq!(int(0), [0x00]);
        assert_eq!(int(23), [0x17]);
        assert_eq!(int(24), [0x18, 24]);
        assert_eq!(int(255), [0x18, 0xff]);
        assert_eq!(int(256), [0x19, 0x01, 0x00]);
        assert_eq!(int(65_536), [0x1a, 0, 1, 0, 0]);
        assert_eq!(int(1 << 32), [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(int(-1), [0x20]);
        assert_eq!(int(-7), [0x26]);
        assert_eq!(int(-25), [0x38, 24]);
        assert_eq!(int(i64::MIN), [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(enc(|o| cbor::bytes(o, &[7; 32]))[..2], [0x58, 0x20]);
        assert_eq!(enc(|o| cbor::text(o, "fmt")), b"\x63fmt");
        assert_eq!(enc(|o| cbor::map(o, 0)), [0xa0]);
        assert_eq!(enc(|o| cbor::map(o, 5)), [0xa5]);
        assert_eq!(enc(|o| cbor::array(o, 300)), [0x99, 0x01, 0x2c]);
    }

    #[test]
    fn cose_key_layout() {
        let key = cose_es256(&[&[4u8][..], &[1u8; 32][..], &[2u8; 32][..]].concat());
        assert_eq!(key[..10], [0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]);
        assert_eq!(key[42..45], [0x22, 0x58, 0x20]);
        assert_eq!(key.len(), 77);
    }

    #[test]
    fn create_then_get_verifies() {
        let b = |v: &Value| unb64(v.as_str().unwrap()).unwrap();
        let mut a = Authenticator::new("http://localhost:4321/x");
        assert_eq!(a.rp_id, "localhost");
        let reg = a
            .create(&json!({"publicKey": {"challenge": "Y2hhbGxlbmdl", "rp": {"id": "localhost", "name": "authd"},
                "user": {"id": "dXNlcg==", "name": "u", "displayName": "U"}}}))
            .unwrap();
        let att = b(&reg["response"]["attestationObject"]);
        assert!(att.starts_with(b"\xa3\x63fmt\x64none\x67attStmt\xa0\x68authData\x58"));
        assert_eq!(b(&reg["response"]["authenticatorData"])[32], 0x45); // UP | UV | AT
        assert_eq!(a.credentials()[0].user_handle, b"user");
        let excluded = json!({"challenge": "AA", "user": {"id": "AA"}, "excludeCredentials": [{"id": reg["id"]}]});
        assert!(a.create(&excluded).is_err());

        let login = a.get(&json!({"challenge": "bG9naW4", "rpId": "localhost", "allowCredentials": []}), 0);
        let r = &login["response"];
        let (auth_data, cdj) = (b(&r["authenticatorData"]), b(&r["clientDataJSON"]));
        assert_eq!(auth_data[33..37], [0, 0, 0, 1]);
        assert_eq!(serde_json::from_slice::<Value>(&cdj).unwrap()["challenge"], "bG9naW4");
        let signed = [&auth_data[..], digest(&SHA256, &cdj).as_ref()].concat();
        let public = a.credentials()[0].key.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public).verify(&signed, &b(&r["signature"])).unwrap();
        assert_eq!(a.clone_credential(0).credentials()[0].counter, 1);
    }
}
