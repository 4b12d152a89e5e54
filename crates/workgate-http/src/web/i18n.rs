//! The words of the web pages, in English and Simplified Chinese.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The English or the Chinese of a phrase used on one page only.
    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Lang::Zh)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language of a request: `?lang=`, else the `wg_lang` cookie (set by the switch), else
    /// the first supported one in `Accept-Language`, else English.
    pub fn of(parts: &Parts) -> Lang {
        let from_query = parts
            .uri
            .query()
            .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "lang").map(|(_, v)| v.into_owned()))
            .and_then(|v| Lang::parse(&v));
        let from_cookie = CookieJar::from_headers(&parts.headers).get("wg_lang").and_then(|c| Lang::parse(c.value()));
        let from_header = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').filter_map(|part| Lang::parse(part.split(';').next().unwrap_or(""))).next());
        from_query.or(from_cookie).or(from_header).unwrap_or(Lang::En)
    }

    /// A phrase of the pages.
    pub fn t(self, key: Key) -> &'static str {
        let (en, zh) = match key {
            Key::AppName => ("Workgate", "Workgate 企业登录"),
            Key::SignIn => ("Sign in", "登录"),
            Key::SignInLead => ("Sign in with your mobile number.", "使用手机号登录。"),
            Key::Region => ("Country or region", "国家或地区"),
            Key::Phone => ("Mobile number", "手机号"),
            Key::SendCode => ("Send code", "获取验证码"),
            Key::CodeSentTo => ("We sent a code to", "验证码已发送至"),
            Key::Code => ("Verification code", "验证码"),
            Key::Verify => ("Continue", "继续"),
            Key::Resend => ("Send a new code", "重新发送验证码"),
            Key::ResendIn => ("You can ask for a new code in", "可重新获取验证码的剩余时间"),
            Key::Seconds => ("s", "秒"),
            Key::ChooseEnterprise => ("Choose your organisation", "选择企业"),
            Key::Password => ("Password", "密码"),
            Key::EnterPassword => ("Enter your password.", "请输入密码。"),
            Key::SetPassword => ("Choose a password", "设置密码"),
            Key::SetPasswordLead => (
                "Your organisation asks for a password. Use at least 8 characters; avoid your name and number.",
                "企业要求设置密码：至少 8 个字符，不要包含姓名或手机号。",
            ),
            Key::PendingTitle => ("Waiting for approval", "等待管理员批准"),
            Key::PendingLead => (
                "Your organisation approves new devices. Ask your administrator to approve this one, then continue.",
                "企业需要管理员批准新设备。请联系管理员批准后继续。",
            ),
            Key::SignedInAs => ("Signed in as", "当前登录"),
            Key::At => ("at", "企业"),
            Key::Devices => ("Your devices", "我的设备"),
            Key::ThisDevice => ("this device", "当前设备"),
            Key::SignOut => ("Sign out", "退出登录"),
            Key::InvitedTitle => ("You are invited", "您收到了邀请"),
            Key::InvitedLead => ("invites you to sign in with the number", "邀请您使用以下手机号登录："),
            Key::InvitationExpiredTitle => ("This invitation has expired", "邀请链接已失效"),
            Key::InvitationExpiredLead => (
                "The link expired or a newer one replaced it. Ask your administrator to send the invitation again, or sign in with your number if you already joined.",
                "链接已过期或已被新的邀请替换。请联系管理员重新发送邀请；如已加入，可直接用手机号登录。",
            ),
            Key::DevSms => ("Messages sent (development)", "已发送短信（开发模式）"),
            Key::DevSmsLead => (
                "SMS messages go to a file in this setup; the newest are shown here.",
                "当前配置下短信写入文件，此处显示最新消息。",
            ),
            Key::NoMessages => ("No messages yet.", "暂无消息。"),
            Key::Language => ("中文", "English"),
            Key::StartOver => ("Start again", "重新开始"),
        };
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// What a person should read for an error `code` of SPEC section 3.
    pub fn error(self, code: &str) -> &'static str {
        let (en, zh) = match code {
            "invalid_phone" => (
                "That is not a mobile number. Check the digits and the country.",
                "这不是有效的手机号，请检查号码和国家或地区。",
            ),
            "not_a_member" => (
                "This number is not registered. Check it for typos, or ask your administrator to add you and re-send the invitation.",
                "该手机号未注册。请检查号码，或联系管理员添加您并重新发送邀请。",
            ),
            "member_disabled" => (
                "Your account is disabled. Ask your administrator to enable it.",
                "您的账号已被停用，请联系管理员启用。",
            ),
            "code_invalid" => ("Wrong code. Check the latest SMS and try again.", "验证码错误，请核对最新短信后重试。"),
            "code_expired" => ("The code has expired. Start again to get a new one.", "验证码已过期，请重新获取。"),
            "too_many_attempts" => {
                ("Too many wrong codes. Start again to get a new code.", "错误次数过多，请重新获取验证码。")
            }
            "rate_limited" => ("Too many attempts. Please wait a moment and try again.", "操作过于频繁，请稍后再试。"),
            "reverification_required" => ("Please verify this device again.", "请重新验证此设备。"),
            "password_invalid" => ("Wrong password.", "密码错误。"),
            "password_too_weak" => (
                "That password is too easy to guess. Use a longer one without your name or number.",
                "密码过于简单，请使用更长且不含姓名或手机号的密码。",
            ),
            "device_pending_approval" => {
                ("This device still waits for your administrator's approval.", "此设备仍在等待管理员批准。")
            }
            "device_limit_reached" => (
                "You have reached your organisation's number of devices. Sign one out, or ask your administrator.",
                "已达到企业允许的设备数量上限，请移除一个设备或联系管理员。",
            ),
            "invitation_expired" => (
                "This invitation has expired. Ask your administrator to send it again.",
                "邀请已失效，请联系管理员重新发送。",
            ),
            "forbidden" => ("Your organisation does not allow this.", "企业策略不允许此操作。"),
            "validation_failed" => ("Please check what you entered.", "请检查输入内容。"),
            "csrf" => ("The form expired. Please try again.", "表单已过期，请重试。"),
            _ => ("Something went wrong. Please try again.", "出现错误，请重试。"),
        };
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Key {
    AppName,
    SignIn,
    SignInLead,
    Region,
    Phone,
    SendCode,
    CodeSentTo,
    Code,
    Verify,
    Resend,
    ResendIn,
    Seconds,
    ChooseEnterprise,
    Password,
    EnterPassword,
    SetPassword,
    SetPasswordLead,
    PendingTitle,
    PendingLead,
    SignedInAs,
    At,
    Devices,
    ThisDevice,
    SignOut,
    InvitedTitle,
    InvitedLead,
    InvitationExpiredTitle,
    InvitationExpiredLead,
    DevSms,
    DevSmsLead,
    NoMessages,
    Language,
    StartOver,
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(parts))
    }
}
