//! What the hosted pages say, in every shipped language.

#[derive(Clone, Copy)]
pub enum Key {
    VerifyTitle,
    VerifyIntro,
    VerifyButton,
    VerifiedTitle,
    Verified,
    ResetTitle,
    ResetIntro,
    NewPassword,
    NewPasswordAgain,
    ResetButton,
    ResetDoneTitle,
    ResetDone,
    Mismatch,
    ForgotTitle,
    ForgotIntro,
    Login,
    ForgotButton,
    ForgotSent,
    ErrorTitle,
    LinkInvalid,
    LinkExpired,
    TooMany,
    AddressTaken,
    Failed,
    CsrfFailed,
    StartOver,
}

pub fn t(lang: &str, key: Key) -> &'static str {
    if lang == "ru" { ru(key) } else { en(key) }
}

fn en(key: Key) -> &'static str {
    match key {
        Key::VerifyTitle => "Confirm your email",
        Key::VerifyIntro => "Press the button to confirm this email address.",
        Key::VerifyButton => "Confirm my email",
        Key::VerifiedTitle => "Email confirmed",
        Key::Verified => "Your email address is confirmed. You can close this page.",
        Key::ResetTitle => "Choose a new password",
        Key::ResetIntro => "Type a new password twice. Every device signed in to your account will be signed out.",
        Key::NewPassword => "New password",
        Key::NewPasswordAgain => "New password, again",
        Key::ResetButton => "Set the new password",
        Key::ResetDoneTitle => "Password changed",
        Key::ResetDone => "Your new password is set. Sign in with it.",
        Key::Mismatch => "The two passwords differ. Type the same password twice.",
        Key::ForgotTitle => "Forgot your password?",
        Key::ForgotIntro => "Give your email, phone number or username. If an account matches, we send it a link.",
        Key::Login => "Email, phone or username",
        Key::ForgotButton => "Send me a link",
        Key::ForgotSent => "If an account matches, a message with a link and a code is on its way.",
        Key::ErrorTitle => "That did not work",
        Key::LinkInvalid => "This link is wrong or was already used.",
        Key::LinkExpired => "This link has expired.",
        Key::TooMany => "Too many attempts. Wait a minute, then try again.",
        Key::AddressTaken => "This address belongs to another account.",
        Key::Failed => "Something went wrong on our side. Try again later.",
        Key::CsrfFailed => "This form has expired. Open the link from the message again.",
        Key::StartOver => "Ask for a new link",
    }
}

fn ru(key: Key) -> &'static str {
    match key {
        Key::VerifyTitle => "Подтверждение адреса",
        Key::VerifyIntro => "Нажмите кнопку, чтобы подтвердить этот адрес почты.",
        Key::VerifyButton => "Подтвердить адрес",
        Key::VerifiedTitle => "Адрес подтверждён",
        Key::Verified => "Ваш адрес почты подтверждён. Эту страницу можно закрыть.",
        Key::ResetTitle => "Новый пароль",
        Key::ResetIntro => "Введите новый пароль дважды. На всех устройствах будет выполнен выход.",
        Key::NewPassword => "Новый пароль",
        Key::NewPasswordAgain => "Новый пароль ещё раз",
        Key::ResetButton => "Сохранить пароль",
        Key::ResetDoneTitle => "Пароль изменён",
        Key::ResetDone => "Новый пароль сохранён. Войдите с ним.",
        Key::Mismatch => "Пароли не совпадают. Введите один и тот же пароль дважды.",
        Key::ForgotTitle => "Забыли пароль?",
        Key::ForgotIntro => {
            "Укажите почту, телефон или имя пользователя. Если учётная запись найдётся, мы пришлём ссылку."
        }
        Key::Login => "Почта, телефон или имя пользователя",
        Key::ForgotButton => "Прислать ссылку",
        Key::ForgotSent => "Если учётная запись найдётся, письмо со ссылкой и кодом уже в пути.",
        Key::ErrorTitle => "Не получилось",
        Key::LinkInvalid => "Ссылка неверна или уже использована.",
        Key::LinkExpired => "Срок действия ссылки истёк.",
        Key::TooMany => "Слишком много попыток. Подождите минуту и попробуйте снова.",
        Key::AddressTaken => "Этот адрес принадлежит другой учётной записи.",
        Key::Failed => "Что-то пошло не так на нашей стороне. Попробуйте позже.",
        Key::CsrfFailed => "Форма устарела. Откройте ссылку из письма ещё раз.",
        Key::StartOver => "Запросить новую ссылку",
    }
}
