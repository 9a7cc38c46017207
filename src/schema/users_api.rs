//! The mobile-commerce platform's users API (IMSHOP.IO webhooks): the user
//! profile, the one-time-code answer and the order history, as typed structs
//! and as descriptors for the mapping compiler, both from one [`contract!`]
//! declaration per object.

use std::collections::BTreeMap;

use super::contract::contract;

contract! {
    /// `{"user": {...}}`: Get User Data, Update, OTP confirm and login
    /// answers. A mapping for user answers maps `[user]`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct UserResponse as USER_RESPONSE {
        /// The profile.
        user: User => "user" Object(USER);
    }

    /// The user's profile. `extra` holds the mapping's own fields, a table of
    /// name = source sent beside the named ones ("…and any other fields").
    #[derive(Default)]
    pub struct User as USER {
        /// The user's id in the CRM.
        id: String => "id" String;
        /// The login answer's page names the id `user_identifier`; sent there
        /// too, from `id`, so not mappable on its own.
        user_identifier: Option<String> => "user_identifier";
        /// Display name.
        name: Option<String> => "name" String;
        /// Phone number.
        phone: Option<String> => "phone" String;
        /// E-mail.
        email: Option<String> => "email" String;
        /// Loyalty bonus balance.
        bonuses: Option<i64> => "bonuses" Integer;
        /// What the bonuses are called in the app (e.g. "points").
        units: Option<String> => "units" String;
        /// Marketing segments the user is in.
        segments: Option<Vec<String>> => "segments" StringList;
        /// Age in years.
        age: Option<i64> => "age" Integer;
        /// Gender.
        gender: Option<String> => "gender" String;
        /// Loyalty card number.
        card_number: Option<String> => "cardNumber" String;
        /// Date of birth, `YYYY-MM-DD`.
        birthday: Option<String> => "birthday" Date;
        /// The mapping's own fields, sent as top-level fields of the user.
        #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
        extra: BTreeMap<String, String> => "extra" StringMap;
    }

    /// `{"otp": {...}}`: the answer to a code request. A mapping for code
    /// requests maps `[otp]`.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct OtpResponse as OTP_RESPONSE {
        /// What the app tells the user.
        otp: Otp => "otp" Object(OTP);
    }

    /// A one-time code was sent.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Otp as OTP {
        /// Seconds until a new code may be requested (the platform assumes 120).
        timeout: Option<i64> => "timeout" Integer;
        /// Attempts left (unlimited when absent).
        attempts_left: Option<i64> => "attemptsLeft" Integer;
        /// The text the app shows.
        message: String => "message" String;
        /// Digits in the code (the platform assumes 4).
        code_length: Option<i64> => "codeLength" Integer;
    }

    /// `{"orders": [...]}`: the order history. `orders` is always sent, `[]`
    /// included: the platform reads an answer without it as "no history". A
    /// mapping for the order history maps `orders`, a required list: an empty
    /// CRM array gives `[]`, an absent one fails (see the mapping reference).
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct OrdersResponse as ORDERS_RESPONSE {
        /// Newest first.
        orders: Vec<Order> => "orders" List(ORDER);
    }

    /// One order. `createdOn` is Unix seconds as a string of digits, as the
    /// platform's example sends it; it sorts the merged history. `items` is
    /// required too and may be empty.
    #[serde(deny_unknown_fields)]
    pub struct Order as ORDER {
        /// The order's id in the CRM.
        id: String => "id" String;
        /// When it was placed.
        created_on: String => "createdOn" Timestamp;
        /// Its status, as the app shows it.
        status: String => "status" String;
        /// The total.
        price: serde_json::Number => "price" Number;
        /// Where the parcel can be followed.
        tracking_url: Option<String> => "trackingUrl" String;
        /// The lines.
        items: Vec<OrderItem> => "items" List(ORDER_ITEM);
    }

    /// One line of an order. `quantity` is a number: goods sold by weight
    /// have fractions.
    #[serde(deny_unknown_fields)]
    pub struct OrderItem as ORDER_ITEM {
        /// The product's id in the CRM.
        private_id: String => "privateId" String;
        /// The product variant's id.
        configuration_id: Option<String> => "configurationId" String;
        /// The product's name.
        name: String => "name" String;
        /// Per unit.
        price: Option<serde_json::Number> => "price" Number;
        /// How many.
        quantity: serde_json::Number => "quantity" Number;
        /// For the whole line.
        discount: Option<serde_json::Number> => "discount" Number;
        /// The line's total.
        subtotal: serde_json::Number => "subtotal" Number;
    }
}
