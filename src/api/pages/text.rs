//! What the hosted pages say, in every shipped language. Each string is written once per
//! language, side by side; the templates read them as `t.<name>`.

use std::sync::Arc;

use minijinja::value::{Object, Value};

/// Declares [`Text`] and one constant per language from a single list, so a string cannot be
/// missing in one language or misnamed between Rust and the templates' lookup.
macro_rules! strings {
    ($($name:ident { en: $en:expr, ru: $ru:expr $(,)? })*) => {
        /// Every string of the hosted pages in one language.
        #[derive(Debug)]
        pub struct Text {
            $(pub $name: &'static str,)*
        }

        const EN: Text = Text { $($name: $en,)* };
        const RU: Text = Text { $($name: $ru,)* };

        /// Every name, for the test that each one is shown somewhere.
        #[cfg(test)]
        pub const NAMES: &[&str] = &[$(stringify!($name),)*];

        impl Text {
            /// The string called `name`, as templates look it up.
            pub fn get(&self, name: &str) -> Option<&'static str> {
                match name {
                    $(stringify!($name) => Some(self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

strings! {
    verify_title {
        en: "Confirm your email",
        ru: "Подтверждение адреса",
    }
    verify_intro {
        en: "Press the button to confirm this email address.",
        ru: "Нажмите кнопку, чтобы подтвердить этот адрес почты.",
    }
    verify_button {
        en: "Confirm my email",
        ru: "Подтвердить адрес",
    }
    verified_title {
        en: "Email confirmed",
        ru: "Адрес подтверждён",
    }
    verified {
        en: "Your email address is confirmed. You can close this page.",
        ru: "Ваш адрес почты подтверждён. Эту страницу можно закрыть.",
    }
    reset_title {
        en: "Choose a new password",
        ru: "Новый пароль",
    }
    reset_intro {
        en: "Type a new password twice. Every device signed in to your account will be signed out.",
        ru: "Введите новый пароль дважды. На всех устройствах будет выполнен выход.",
    }
    new_password {
        en: "New password",
        ru: "Новый пароль",
    }
    new_password_again {
        en: "New password, again",
        ru: "Новый пароль ещё раз",
    }
    unlink_identities {
        en: "Also unlink every other sign-in (Google, GitHub…) from this account",
        ru: "Также отвязать от аккаунта все внешние входы (Google, GitHub…)",
    }
    reset_button {
        en: "Set the new password",
        ru: "Сохранить пароль",
    }
    reset_done_title {
        en: "Password changed",
        ru: "Пароль изменён",
    }
    reset_done {
        en: "Your new password is set. Sign in with it.",
        ru: "Новый пароль сохранён. Войдите с ним.",
    }
    mismatch {
        en: "The two passwords differ. Type the same password twice.",
        ru: "Пароли не совпадают. Введите один и тот же пароль дважды.",
    }
    forgot_title {
        en: "Forgot your password?",
        ru: "Забыли пароль?",
    }
    forgot_intro {
        en: "Give your email, phone number or username. If an account matches, we send it a link.",
        ru: "Укажите почту, телефон или имя пользователя. Если учётная запись найдётся, мы пришлём ссылку.",
    }
    login {
        en: "Email, phone or username",
        ru: "Почта, телефон или имя пользователя",
    }
    forgot_button {
        en: "Send me a link",
        ru: "Прислать ссылку",
    }
    forgot_sent {
        en: "If an account matches, a message with a link and a code is on its way.",
        ru: "Если учётная запись найдётся, письмо со ссылкой и кодом уже в пути.",
    }
    error_title {
        en: "That did not work",
        ru: "Не получилось",
    }
    link_invalid {
        en: "This link is wrong or was already used.",
        ru: "Ссылка неверна или уже использована.",
    }
    link_expired {
        en: "This link has expired.",
        ru: "Срок действия ссылки истёк.",
    }
    too_many {
        en: "Too many attempts. Wait a minute, then try again.",
        ru: "Слишком много попыток. Подождите минуту и попробуйте снова.",
    }
    address_taken {
        en: "This address belongs to another account.",
        ru: "Этот адрес принадлежит другой учётной записи.",
    }
    failed {
        en: "Something went wrong on our side. Try again later.",
        ru: "Что-то пошло не так на нашей стороне. Попробуйте позже.",
    }
    csrf_failed {
        en: "This form has expired. Open the link from the message again.",
        ru: "Форма устарела. Откройте ссылку из письма ещё раз.",
    }
    start_over {
        en: "Ask for a new link",
        ru: "Запросить новую ссылку",
    }
    sign_in_title {
        en: "Sign in",
        ru: "Вход",
    }
    sign_in_to {
        en: "to continue to",
        ru: "чтобы продолжить в",
    }
    password {
        en: "Password",
        ru: "Пароль",
    }
    sign_in_button {
        en: "Sign in",
        ru: "Войти",
    }
    forgot_link {
        en: "Forgot your password?",
        ru: "Забыли пароль?",
    }
    wrong_password {
        en: "Wrong login or password.",
        ru: "Неверный логин или пароль.",
    }
    code_title {
        en: "Enter your code",
        ru: "Введите код",
    }
    code_intro {
        en: "Enter the 6-digit code from your authenticator app, or a recovery code.",
        ru: "Введите 6-значный код из приложения-аутентификатора или код восстановления.",
    }
    code_label {
        en: "Code",
        ru: "Код",
    }
    code_button {
        en: "Continue",
        ru: "Продолжить",
    }
    password_too_short {
        en: "The password is too short: use at least {min} characters.",
        ru: "Пароль слишком короткий: нужно не меньше {min} символов.",
    }
    password_too_long {
        en: "The password is too long: use at most {max} characters.",
        ru: "Пароль слишком длинный: не больше {max} символов.",
    }
    password_too_common {
        en: "This password is one of the most commonly used. Choose another.",
        ru: "Это один из самых распространённых паролей. Выберите другой.",
    }
    password_has_identifier {
        en: "The password must not contain your email address, phone number or username.",
        ru: "Пароль не должен содержать ваш адрес почты, номер телефона или имя пользователя.",
    }
    value_refused {
        en: "This is not accepted. Check what you entered.",
        ru: "Это значение не принимается. Проверьте введённое.",
    }
    wrong_code {
        en: "That code is not right. Try the next one.",
        ru: "Код неверен. Попробуйте следующий.",
    }
    consent_title {
        en: "Allow access?",
        ru: "Разрешить доступ?",
    }
    consent_intro {
        en: "wants to:",
        ru: "запрашивает:",
    }
    scope_openid {
        en: "Know who you are",
        ru: "Узнать, кто вы",
    }
    scope_profile {
        en: "See your username",
        ru: "Видеть ваше имя пользователя",
    }
    scope_email {
        en: "See your email address",
        ru: "Видеть ваш адрес почты",
    }
    scope_phone {
        en: "See your phone number",
        ru: "Видеть ваш номер телефона",
    }
    scope_roles {
        en: "See your roles",
        ru: "Видеть ваши роли",
    }
    allow_button {
        en: "Allow",
        ru: "Разрешить",
    }
    deny_button {
        en: "Deny",
        ru: "Отказать",
    }
    signed_in_title {
        en: "Signed in",
        ru: "Вход выполнен",
    }
    signed_in {
        en: "You are signed in. You can close this page.",
        ru: "Вы вошли. Эту страницу можно закрыть.",
    }
    sign_out_title {
        en: "Sign out?",
        ru: "Выйти?",
    }
    sign_out_intro {
        en: "You will be signed out here and in every application you signed in to through this login.",
        ru: "Вы выйдете здесь и во всех приложениях, в которые вошли через этот вход.",
    }
    sign_out_button {
        en: "Sign out",
        ru: "Выйти",
    }
    signed_out_title {
        en: "Signed out",
        ru: "Выход выполнен",
    }
    signed_out {
        en: "You are signed out.",
        ru: "Вы вышли.",
    }
    unknown_client {
        en: "This application is not known here, or its return address is not registered.",
        ru: "Это приложение здесь неизвестно, или его адрес возврата не зарегистрирован.",
    }
    request_stale {
        en: "This sign-in took too long or was changed. Start again from the application.",
        ru: "Вход занял слишком много времени или был изменён. Начните заново из приложения.",
    }
    bad_logout {
        en: "This sign-out request is not valid.",
        ru: "Этот запрос на выход недействителен.",
    }
    cannot_sign_in {
        en: "You cannot sign in here for now: confirm your address, or set up a second factor in the application first.",
        ru: "Сейчас войти здесь нельзя: подтвердите адрес или сначала настройте второй фактор в приложении.",
    }
    upstream_failed {
        en: "That sign-in did not work. Try again, or sign in with your password.",
        ru: "Этот вход не удался. Попробуйте снова или войдите с паролем.",
    }
    upstream_not_fresh {
        en: "The application asks you to sign in again, and that provider did not confirm it here. Sign in with your password, or with a provider that asks you again.",
        ru: "Приложение просит войти заново, а этот провайдер здесь этого не подтвердил. Войдите с паролем или через провайдера, который спросит вас снова.",
    }
    or_continue_with {
        en: "Or continue with:",
        ru: "Или продолжить через:",
    }
    challenge_due {
        en: "Many failed attempts. Sign in again: your browser first works a moment to show it is not a script.",
        ru: "Много неудачных попыток. Войдите снова: сначала браузер немного поработает, чтобы показать, что он не скрипт.",
    }
    account_disabled {
        en: "This account is disabled.",
        ru: "Эта учётная запись отключена.",
    }
    passkey_button {
        en: "Sign in with a passkey",
        ru: "Войти с ключом доступа",
    }
    passkey_failed {
        en: "That passkey did not work. Try again, or sign in another way.",
        ru: "Этот ключ доступа не подошёл. Попробуйте снова или войдите иначе.",
    }
    recover_title {
        en: "Recover your account",
        ru: "Восстановление доступа",
    }
    recover_intro {
        en: "Add a new passkey to your account: your device will ask you to confirm with its screen lock, fingerprint or face. Every other session of the account ends.",
        ru: "Добавьте в учётную запись новый ключ доступа: устройство попросит подтвердить блокировкой экрана, отпечатком пальца или лицом. Все остальные сеансы учётной записи завершатся.",
    }
    recover_account {
        en: "Account",
        ru: "Учётная запись",
    }
    recover_factor {
        en: "If the account has an authenticator app: its current code, or a recovery code",
        ru: "Если у учётной записи есть приложение-аутентификатор: его текущий код или код восстановления",
    }
    recover_button {
        en: "Add a passkey",
        ru: "Добавить ключ доступа",
    }
    recover_done {
        en: "Your new passkey is ready. Sign in with it.",
        ru: "Новый ключ доступа готов. Войдите с ним.",
    }
    recover_failed {
        en: "The passkey could not be added. The link may be used or expired: ask for a new one.",
        ru: "Не удалось добавить ключ доступа. Возможно, ссылка уже использована или устарела: запросите новую.",
    }
    recover_needs_passkeys {
        en: "This page needs a browser that supports passkeys, with JavaScript on.",
        ru: "Для этой страницы нужен браузер с поддержкой ключей доступа и включённым JavaScript.",
    }
    sign_in_link {
        en: "Sign in",
        ru: "Войти",
    }
    account_title {
        en: "Your account",
        ru: "Ваша учётная запись",
    }
    account_link {
        en: "Manage your account",
        ru: "Управление учётной записью",
    }
    profile_heading {
        en: "Profile",
        ru: "Профиль",
    }
    display_name {
        en: "Name",
        ru: "Имя",
    }
    email {
        en: "Email",
        ru: "Почта",
    }
    phone {
        en: "Phone",
        ru: "Телефон",
    }
    username {
        en: "Username",
        ru: "Имя пользователя",
    }
    confirmed {
        en: "confirmed",
        ru: "подтверждён",
    }
    not_confirmed {
        en: "not confirmed",
        ru: "не подтверждён",
    }
    profile_hint {
        en: "A new email or phone takes effect once you confirm it through the message we send.",
        ru: "Новая почта или телефон вступят в силу, когда вы подтвердите их по нашему сообщению.",
    }
    save_button {
        en: "Save",
        ru: "Сохранить",
    }
    password_heading {
        en: "Password",
        ru: "Пароль",
    }
    current_password {
        en: "Current password",
        ru: "Текущий пароль",
    }
    change_password_button {
        en: "Change password",
        ru: "Сменить пароль",
    }
    no_password {
        en: "This account has no password.",
        ru: "У этой учётной записи нет пароля.",
    }
    totp_heading {
        en: "Authenticator app",
        ru: "Приложение-аутентификатор",
    }
    totp_on {
        en: "On: sign-ins with a password also ask for a code from the app.",
        ru: "Включено: вход с паролем также требует код из приложения.",
    }
    totp_off {
        en: "Off.",
        ru: "Выключено.",
    }
    totp_begin_button {
        en: "Turn on",
        ru: "Включить",
    }
    totp_scan {
        en: "Scan this code with your authenticator app, or type the key, then enter the code it shows.",
        ru: "Отсканируйте код приложением-аутентификатором или введите ключ, затем введите показанный код.",
    }
    totp_confirm_button {
        en: "Confirm",
        ru: "Подтвердить",
    }
    totp_disable_button {
        en: "Turn off",
        ru: "Выключить",
    }
    recovery_codes_intro {
        en: "Your recovery codes. Each works once, if you lose your devices. They are shown only now: keep them somewhere safe.",
        ru: "Ваши коды восстановления. Каждый действует один раз, если вы потеряете устройства. Они показаны только сейчас: сохраните их в надёжном месте.",
    }
    passkeys_heading {
        en: "Passkeys",
        ru: "Ключи доступа",
    }
    passkeys_none {
        en: "No passkeys yet.",
        ru: "Ключей доступа пока нет.",
    }
    add_passkey_button {
        en: "Add a passkey",
        ru: "Добавить ключ доступа",
    }
    passkey_added {
        en: "The passkey was added.",
        ru: "Ключ доступа добавлен.",
    }
    name_label {
        en: "Name",
        ru: "Название",
    }
    rename_button {
        en: "Rename",
        ru: "Переименовать",
    }
    remove_button {
        en: "Remove",
        ru: "Удалить",
    }
    created {
        en: "added",
        ru: "добавлен",
    }
    last_used {
        en: "last used",
        ru: "последний вход",
    }
    never {
        en: "never",
        ru: "никогда",
    }
    synced {
        en: "synced",
        ru: "синхронизирован",
    }
    identities_heading {
        en: "Linked accounts",
        ru: "Связанные учётные записи",
    }
    link_with {
        en: "Link an account to sign in with:",
        ru: "Привязать учётную запись для входа:",
    }
    linked {
        en: "The account was linked: you can now sign in with it.",
        ru: "Учётная запись привязана: теперь через неё можно входить.",
    }
    link_failed {
        en: "That account could not be linked. It may be linked to another user already.",
        ru: "Не удалось привязать эту учётную запись. Возможно, она уже привязана к другому пользователю.",
    }
    identities_none {
        en: "No linked accounts.",
        ru: "Связанных учётных записей нет.",
    }
    unlink_button {
        en: "Unlink",
        ru: "Отвязать",
    }
    sessions_heading {
        en: "Sessions and devices",
        ru: "Сеансы и устройства",
    }
    this_device {
        en: "this browser",
        ru: "этот браузер",
    }
    end_button {
        en: "End",
        ru: "Завершить",
    }
    end_others_button {
        en: "End all other sessions",
        ru: "Завершить все остальные сеансы",
    }
    events_heading {
        en: "Recent security events",
        ru: "Недавние события безопасности",
    }
    done {
        en: "Done.",
        ru: "Готово.",
    }
    step_up_needed {
        en: "For this change, sign in again first.",
        ru: "Для этого изменения сначала войдите снова.",
    }
    last_way_in {
        en: "This is your last way to sign in: add another before removing it.",
        ru: "Это ваш последний способ входа: сначала добавьте другой.",
    }
    wrong_current_password {
        en: "The current password is wrong.",
        ru: "Текущий пароль неверен.",
    }
    admin_title {
        en: "Admin console",
        ru: "Консоль администратора",
    }
    admin_nav {
        en: "Sections",
        ru: "Разделы",
    }
    admin_users {
        en: "Users",
        ru: "Пользователи",
    }
    admin_audit {
        en: "Audit log",
        ru: "Журнал аудита",
    }
    admin_keys {
        en: "Signing keys",
        ru: "Ключи подписи",
    }
    admin_signed_in_as {
        en: "Signed in as",
        ru: "Вы вошли как",
    }
    admin_home_intro {
        en: "Choose a section above. Each shows only what your permissions allow.",
        ru: "Выберите раздел выше. В каждом видно только то, что позволяют ваши права.",
    }
    admin_no_access {
        en: "Your account holds no administrative permission.",
        ru: "У вашей учётной записи нет прав администратора.",
    }
    admin_refused {
        en: "Not allowed: your permissions do not cover this.",
        ru: "Нельзя: ваших прав на это не хватает.",
    }
    admin_not_found {
        en: "Not found.",
        ru: "Не найдено.",
    }
    admin_done {
        en: "Done.",
        ru: "Готово.",
    }
    admin_step_up {
        en: "This action needs a recent sign-in.",
        ru: "Для этого действия нужен недавний вход.",
    }
    admin_sign_in_again {
        en: "Sign in again",
        ru: "Войти снова",
    }
    admin_search {
        en: "Login starts with",
        ru: "Логин начинается с",
    }
    admin_status {
        en: "Status",
        ru: "Статус",
    }
    admin_any {
        en: "Any",
        ru: "Любой",
    }
    admin_role {
        en: "Role",
        ru: "Роль",
    }
    admin_find {
        en: "Find",
        ru: "Найти",
    }
    admin_login {
        en: "Login",
        ru: "Логин",
    }
    admin_roles {
        en: "Roles",
        ru: "Роли",
    }
    admin_created {
        en: "Created",
        ru: "Создан",
    }
    admin_none {
        en: "Nothing here.",
        ru: "Здесь ничего нет.",
    }
    admin_next {
        en: "Next page",
        ru: "Следующая страница",
    }
    admin_create_user {
        en: "Create a user",
        ru: "Создать пользователя",
    }
    admin_email {
        en: "Email",
        ru: "Эл. почта",
    }
    admin_phone {
        en: "Phone",
        ru: "Телефон",
    }
    admin_username {
        en: "Username",
        ru: "Имя пользователя",
    }
    admin_name {
        en: "Name",
        ru: "Имя",
    }
    admin_password_optional {
        en: "Password (optional: without one, the user sets it by a reset)",
        ru: "Пароль (необязательно: без него пользователь задаст его через сброс)",
    }
    admin_create {
        en: "Create",
        ru: "Создать",
    }
    admin_profile {
        en: "Profile",
        ru: "Профиль",
    }
    admin_disable {
        en: "Disable",
        ru: "Заблокировать",
    }
    admin_enable {
        en: "Enable",
        ru: "Разблокировать",
    }
    admin_grant {
        en: "Grant",
        ru: "Выдать",
    }
    admin_revoke {
        en: "Revoke",
        ru: "Отозвать",
    }
    admin_sessions {
        en: "Sessions",
        ru: "Сеансы",
    }
    admin_device {
        en: "Device",
        ru: "Устройство",
    }
    admin_last_used {
        en: "Last used",
        ru: "Последнее использование",
    }
    admin_client {
        en: "Application",
        ru: "Приложение",
    }
    admin_end {
        en: "End",
        ru: "Завершить",
    }
    admin_end_all {
        en: "End all sessions",
        ru: "Завершить все сеансы",
    }
    admin_identities {
        en: "Linked accounts",
        ru: "Связанные учётные записи",
    }
    admin_unlink {
        en: "Unlink",
        ru: "Отвязать",
    }
    admin_factors {
        en: "Second factors",
        ru: "Вторые факторы",
    }
    admin_totp_on {
        en: "TOTP is on.",
        ru: "TOTP включён.",
    }
    admin_totp_off {
        en: "No TOTP.",
        ru: "TOTP не включён.",
    }
    admin_reset_totp {
        en: "Reset TOTP and recovery codes",
        ru: "Сбросить TOTP и коды восстановления",
    }
    admin_passkeys {
        en: "Passkeys",
        ru: "Ключи доступа",
    }
    admin_remove {
        en: "Remove",
        ru: "Удалить",
    }
    admin_recovery {
        en: "Recovery",
        ru: "Восстановление",
    }
    admin_recovery_link {
        en: "Make a recovery link",
        ru: "Создать ссылку для восстановления",
    }
    admin_link_once {
        en: "Give the user this link; it works once and is not shown again:",
        ru: "Передайте пользователю эту ссылку; она действует один раз и больше не будет показана:",
    }
    admin_trail {
        en: "Audit trail",
        ru: "История событий",
    }
    admin_time {
        en: "Time",
        ru: "Время",
    }
    admin_event {
        en: "Event",
        ru: "Событие",
    }
    admin_outcome {
        en: "Outcome",
        ru: "Итог",
    }
    admin_actor {
        en: "Actor",
        ru: "Кто",
    }
    admin_user {
        en: "User",
        ru: "Пользователь",
    }
    admin_since {
        en: "Since (an age like 24h, or a date)",
        ru: "С какого времени (давность вроде 24h или дата)",
    }
    admin_filter {
        en: "Filter",
        ru: "Отобрать",
    }
    admin_older {
        en: "Older",
        ru: "Раньше",
    }
    admin_kid {
        en: "Key id",
        ru: "Идентификатор ключа",
    }
    admin_alg {
        en: "Algorithm",
        ru: "Алгоритм",
    }
    admin_state {
        en: "State",
        ru: "Состояние",
    }
    admin_retires {
        en: "Retires",
        ru: "Выводится",
    }
    admin_rotate {
        en: "Rotate: make a new key active",
        ru: "Сменить: сделать активным новый ключ",
    }
    admin_clients {
        en: "Clients",
        ru: "Клиенты",
    }
    admin_permission {
        en: "Permission",
        ru: "Право",
    }
    admin_permissions {
        en: "Permissions (separated by spaces)",
        ru: "Права (через пробел)",
    }
    admin_create_role {
        en: "Create a role",
        ru: "Создать роль",
    }
    admin_holders {
        en: "Who holds it",
        ru: "У кого она есть",
    }
    admin_mfa_required {
        en: "Its holders need a second factor.",
        ru: "Её обладателям нужен второй фактор.",
    }
    admin_mfa_optional {
        en: "A second factor is up to its holders.",
        ru: "Второй фактор — на усмотрение её обладателей.",
    }
    admin_mfa_required_button {
        en: "Require a second factor",
        ru: "Требовать второй фактор",
    }
    admin_mfa_optional_button {
        en: "Stop requiring a second factor",
        ru: "Не требовать второй фактор",
    }
    admin_secret_once {
        en: "The client id and its secret, which is not shown again:",
        ru: "Идентификатор и секрет клиента; секрет больше не будет показан:",
    }
    admin_kind {
        en: "Kind",
        ru: "Вид",
    }
    admin_public {
        en: "Public (no secret; PKCE)",
        ru: "Публичный (без секрета; PKCE)",
    }
    admin_confidential {
        en: "Confidential (with a secret)",
        ru: "Конфиденциальный (с секретом)",
    }
    admin_redirect_uris {
        en: "Redirect URIs, one per line",
        ru: "Адреса возврата, по одному в строке",
    }
    admin_logout_uris {
        en: "Addresses after sign-out, one per line",
        ru: "Адреса после выхода, по одному в строке",
    }
    admin_trusted {
        en: "Trusted: no consent asked",
        ru: "Доверенный: согласие не спрашивается",
    }
    admin_require_par {
        en: "Requires pushed authorization requests",
        ru: "Требует PAR-запросов",
    }
    admin_save {
        en: "Save",
        ru: "Сохранить",
    }
    admin_rotate_secret {
        en: "New secret",
        ru: "Новый секрет",
    }
    admin_create_client {
        en: "Create a client",
        ru: "Создать клиента",
    }
    admin_client_roles {
        en: "Roles of its own tokens (a backend), separated by spaces",
        ru: "Роли его собственных токенов (для серверов), через пробел",
    }
    admin_webhooks {
        en: "Webhooks",
        ru: "Вебхуки",
    }
    admin_webhook_secret_once {
        en: "The signing secret of this endpoint, not shown again:",
        ru: "Секрет подписи для этого адреса; больше не будет показан:",
    }
    admin_user_count {
        en: "Users",
        ru: "Пользователей",
    }
    admin_session_count {
        en: "Sessions open",
        ru: "Открытых сеансов",
    }
    admin_activity {
        en: "Sign-ins over the last day",
        ru: "Входы за последние сутки",
    }
    admin_logins_hour {
        en: "Sign-ins, last hour",
        ru: "Входов за час",
    }
    admin_failures_hour {
        en: "Failed sign-ins, last hour",
        ru: "Неудачных входов за час",
    }
    admin_logins_day {
        en: "Sign-ins, last 24 hours",
        ru: "Входов за сутки",
    }
    admin_failures_day {
        en: "Failed sign-ins, last 24 hours",
        ru: "Неудачных входов за сутки",
    }
    admin_chart {
        en: "Sign-ins (blue) and failed sign-ins (red) per hour, last 24 hours",
        ru: "Входы (синие) и неудачные входы (красные) по часам за сутки",
    }
    admin_live {
        en: "New events appear on top as they happen.",
        ru: "Новые события появляются сверху по мере того, как происходят.",
    }
    admin_webhook_secret {
        en: "Signing secret (whsec_…; generated when left empty)",
        ru: "Секрет подписи (whsec_…; если пусто, будет создан)",
    }
    admin_endpoints {
        en: "Endpoints",
        ru: "Адреса",
    }
    admin_from_config {
        en: "(from the config file)",
        ru: "(из файла настроек)",
    }
    admin_events {
        en: "Events, separated by spaces (user.registered, login.failed, …)",
        ru: "События через пробел (user.registered, login.failed, …)",
    }
    admin_add {
        en: "Add",
        ru: "Добавить",
    }
    admin_deliveries {
        en: "Deliveries",
        ru: "Доставки",
    }
    admin_pending {
        en: "pending",
        ru: "в очереди",
    }
    admin_delivered {
        en: "delivered",
        ru: "доставлено",
    }
    admin_failed {
        en: "failed",
        ru: "не доставлено",
    }
    admin_recent_deliveries {
        en: "The newest twenty, whatever became of them; a failed one can be sent again.",
        ru: "Двадцать последних, чем бы ни закончились; неудавшуюся можно отправить снова.",
    }
    admin_attempts {
        en: "Attempts",
        ru: "Попытки",
    }
    admin_error {
        en: "Last error",
        ru: "Последняя ошибка",
    }
    admin_retry {
        en: "Send again",
        ru: "Отправить снова",
    }
}

/// The strings of `lang`; English unless it is Russian.
pub fn of(lang: &str) -> &'static Text {
    if lang == "ru" { &RU } else { &EN }
}

/// The strings as the templates see them: an unknown name is undefined, which the strict
/// environment turns into an error (and a test into a failure) instead of an empty string.
#[derive(Debug)]
struct Strings(&'static Text);

impl Object for Strings {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).map(Value::from)
    }
}

impl Text {
    /// The strings for a template's context, as `t`.
    pub fn to_value(&'static self) -> Value {
        Value::from_object(Strings(self))
    }
}
