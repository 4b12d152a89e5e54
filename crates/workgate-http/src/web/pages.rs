//! The HTML of the web pages (maud escapes every value). No inline script or style: the
//! Content-Security-Policy allows only `/assets/…` from this server.

use super::i18n::{Key, Lang};
use maud::{DOCTYPE, Markup, html};

/// Regions offered beside the number; a number typed with `+` needs none.
pub const REGIONS: &[(&str, &str)] = &[
    ("CN", "+86"),
    ("HK", "+852"),
    ("MO", "+853"),
    ("TW", "+886"),
    ("SG", "+65"),
    ("JP", "+81"),
    ("KR", "+82"),
    ("US", "+1"),
    ("CA", "+1"),
    ("GB", "+44"),
    ("DE", "+49"),
    ("FR", "+33"),
    ("AU", "+61"),
    ("IN", "+91"),
];

pub fn layout(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t(Key::AppName)) }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    span.brand { (lang.t(Key::AppName)) }
                    a.lang href={ "?lang=" (lang.other().code()) } lang=(lang.other().code()) { (lang.t(Key::Language)) }
                }
                main { (body) }
            }
        }
    }
}

pub fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
    }
}

pub struct PhoneForm<'a> {
    pub csrf: &'a str,
    pub phone: &'a str,
    /// The invited number, masked: the field may then stay empty.
    pub hint: Option<&'a str>,
    pub region: &'a str,
    pub invitation: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn phone_form(lang: Lang, f: &PhoneForm) -> Markup {
    layout(
        lang,
        lang.t(Key::SignIn),
        html! {
            h1 { (lang.t(Key::SignIn)) }
            p { (lang.t(Key::SignInLead)) }
            (error_box(f.error))
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(f.csrf);
                @if let Some(inv) = f.invitation { input type="hidden" name="invitation" value=(inv); }
                label for="region" { (lang.t(Key::Region)) }
                select id="region" name="region" {
                    @for (code, prefix) in REGIONS {
                        option value=(code) selected[*code == f.region] { (code) " " (prefix) }
                    }
                }
                label for="phone" { (lang.t(Key::Phone)) }
                @if let Some(hint) = f.hint {
                    input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel" placeholder=(hint) value=(f.phone);
                } @else {
                    input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel" required value=(f.phone);
                }
                button type="submit" { (lang.t(Key::SendCode)) }
            }
        },
    )
}

pub struct CodeForm<'a> {
    pub csrf: &'a str,
    pub login_id: &'a str,
    pub phone_masked: &'a str,
    pub code_length: u32,
    pub resend_after: i64,
    pub error: Option<&'a str>,
}

pub fn code_form(lang: Lang, f: &CodeForm) -> Markup {
    layout(
        lang,
        lang.t(Key::Code),
        html! {
            h1 { (lang.t(Key::Code)) }
            p { (lang.t(Key::CodeSentTo)) " " strong { (f.phone_masked) } }
            (error_box(f.error))
            form method="post" action="/login/code" {
                input type="hidden" name="csrf" value=(f.csrf);
                input type="hidden" name="login_id" value=(f.login_id);
                label for="code" { (lang.t(Key::Code)) }
                input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    pattern="[0-9]*" maxlength=(f.code_length) required autofocus;
                button type="submit" { (lang.t(Key::Verify)) }
            }
            form method="post" action="/login/resend" {
                input type="hidden" name="csrf" value=(f.csrf);
                input type="hidden" name="login_id" value=(f.login_id);
                p.muted data-countdown=(f.resend_after) {
                    (lang.t(Key::ResendIn)) " " span.count { (f.resend_after) } (lang.t(Key::Seconds))
                }
                button.secondary type="submit" data-enable-after=(f.resend_after) { (lang.t(Key::Resend)) }
            }
            p { a href="/login" { (lang.t(Key::StartOver)) } }
        },
    )
}

pub fn enterprise_form(lang: Lang, csrf: &str, login_id: &str, enterprises: &[(String, String)]) -> Markup {
    layout(
        lang,
        lang.t(Key::ChooseEnterprise),
        html! {
            h1 { (lang.t(Key::ChooseEnterprise)) }
            @for (id, name) in enterprises {
                form method="post" action="/login/enterprise" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="login_id" value=(login_id);
                    input type="hidden" name="enterprise_id" value=(id);
                    button.choice type="submit" { (name) }
                }
            }
        },
    )
}

pub fn password_form(lang: Lang, csrf: &str, login_id: &str, set: bool, error: Option<&str>) -> Markup {
    let title = if set { lang.t(Key::SetPassword) } else { lang.t(Key::Password) };
    layout(
        lang,
        title,
        html! {
            h1 { (title) }
            p { (if set { lang.t(Key::SetPasswordLead) } else { lang.t(Key::EnterPassword) }) }
            (error_box(error))
            form method="post" action="/login/password" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="login_id" value=(login_id);
                label for="password" { (lang.t(Key::Password)) }
                input id="password" name="password" type="password" required autofocus
                    autocomplete=(if set { "new-password" } else { "current-password" });
                button type="submit" { (lang.t(Key::Verify)) }
            }
        },
    )
}

pub fn pending_page(lang: Lang, csrf: &str, login_id: &str, error: Option<&str>) -> Markup {
    layout(
        lang,
        lang.t(Key::PendingTitle),
        html! {
            h1 { (lang.t(Key::PendingTitle)) }
            p { (lang.t(Key::PendingLead)) }
            (error_box(error))
            form method="post" action="/login/continue" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="login_id" value=(login_id);
                button type="submit" { (lang.t(Key::Verify)) }
            }
        },
    )
}

pub struct Home<'a> {
    pub csrf: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub enterprise: &'a str,
    /// (name or platform, last seen, is this device)
    pub devices: Vec<(String, String, bool)>,
}

pub fn home(lang: Lang, h: &Home) -> Markup {
    layout(
        lang,
        h.name,
        html! {
            h1 { (h.name) }
            p id="signed-in" { (lang.t(Key::SignedInAs)) " " strong { (h.phone) } " — " (lang.t(Key::At)) " " strong { (h.enterprise) } }
            h2 { (lang.t(Key::Devices)) }
            ul.devices {
                @for (name, seen, current) in &h.devices {
                    li { (name) " · " (seen) @if *current { " (" (lang.t(Key::ThisDevice)) ")" } }
                }
            }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(h.csrf);
                button.secondary type="submit" { (lang.t(Key::SignOut)) }
            }
        },
    )
}

pub fn invitation(lang: Lang, enterprise: &str, phone_masked: &str, token: &str) -> Markup {
    layout(
        lang,
        lang.t(Key::InvitedTitle),
        html! {
            h1 { (lang.t(Key::InvitedTitle)) }
            p { strong { (enterprise) } " " (lang.t(Key::InvitedLead)) " " strong { (phone_masked) } }
            p { a.button href={ "/login?invitation=" (token) } { (lang.t(Key::SignIn)) } }
        },
    )
}

pub fn invitation_expired(lang: Lang) -> Markup {
    layout(
        lang,
        lang.t(Key::InvitationExpiredTitle),
        html! {
            h1 { (lang.t(Key::InvitationExpiredTitle)) }
            p { (lang.t(Key::InvitationExpiredLead)) }
            p { a.button href="/login" { (lang.t(Key::SignIn)) } }
        },
    )
}

pub fn dev_sms(lang: Lang, messages: &[crate::DevMessage]) -> Markup {
    layout(
        lang,
        lang.t(Key::DevSms),
        html! {
            h1 { (lang.t(Key::DevSms)) }
            p.muted { (lang.t(Key::DevSmsLead)) }
            @if messages.is_empty() { p { (lang.t(Key::NoMessages)) } }
            ol.messages reversed {
                @for m in messages.iter().rev() {
                    li { strong { (m.to) } " · " span.muted { (m.sent_at) } br; (m.body) }
                }
            }
        },
    )
}
